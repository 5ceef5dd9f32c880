# Learning-rate sweep on dev, then one job per run (model, method, task, seed): train, then score test.


rule sweep_learning_rate:
    input:
        meta=TASK_META,
        method_code=method_source,
        model=model_inputs,
    output:
        f"{SWEEP}/chosen.json",
    params:
        spec=model_spec,
        overrides=overrides,
        learning_rates=lambda w: sweep_learning_rates(w.method),
        seed=config.get("lr_sweep", {}).get("seed", 0),
        train=config["train"],
        batch_size=lambda w: eval_batch_size(w.task),
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/sweep/{{model}}/{{method}}/{{task}}.log",
    benchmark:
        f"{BENCH}/sweep/{{model}}/{{method}}/{{task}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/sweep_learning_rate.py"


rule run:
    # Train, keep the adapter, and score test with the trained model, in one job: a run pays
    # one start-up and one model load (experiment.jobs.train_run).
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
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/run/{{model}}/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/run/{{model}}/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/train_and_evaluate.py"
