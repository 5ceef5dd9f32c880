# Learning-rate sweep on dev (which also yields the first seed's run), then one job per other run
# (model, method, task, seed): train, then score test.


rule sweep_learning_rate:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",  # the first seed's run is scored on test in this job
        method_code=method_source,
        model=model_inputs,
    output:
        choice=f"{SWEEP}/chosen.json",
        record=f"{SWEEP_RUN}/train.json",
        adapter=directory(SWEEP_ADAPTER),
        evaluation=f"{SWEEP_RUN}/eval.json",
    params:
        spec=model_spec,
        overrides=overrides,
        multipliers=config["lr_sweep"]["multipliers"],
        max_extensions=config["lr_sweep"].get("max_extensions", 3),
        seed=SWEEP_SEED,
        train=config["train"],
        batch_size=lambda w: eval_batch_size(w.task),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/sweep/{{model}}/{{method}}/{{task}}.log",
    benchmark:
        f"{BENCH}/sweep/{{model}}/{{method}}/{{task}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/sweep_learning_rate.py"


rule run:
    # Train, keep the adapter, and score test with the trained model, in one job: a run pays
    # one start-up and one model load (experiment.jobs.train_run). The first seed's run comes
    # from the sweep.
    wildcard_constraints:
        seed=OTHER_SEEDS,
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        lr=f"{SWEEP}/chosen.json",
        method_code=method_source,
        model=model_inputs,
    output:
        record=f"{RUN}/train.json",
        adapter=directory(ADAPTER),
        evaluation=f"{RUN}/eval.json",
    params:
        spec=model_spec,
        overrides=overrides,
        train=config["train"],
        batch_size=lambda w: eval_batch_size(w.task),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/run/{{model}}/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/run/{{model}}/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/train_and_evaluate.py"
