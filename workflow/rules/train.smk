# Learning-rate sweep on dev, then one training run per (model, method, task, seed).


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
        batch_size=config["eval"]["batch_size"],
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


rule train:
    input:
        meta=TASK_META,
        lr=f"{SWEEP}/chosen.json",
        method_code=method_source,
        model=model_inputs,
    output:
        record=f"{RUN}/train.json",
        adapter=directory(ADAPTER),
    params:
        spec=model_spec,
        overrides=overrides,
        train=config["train"],
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/train/{{model}}/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{model}}/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/train.py"
