# lm-evaluation-harness on each trained adapter, and on the untrained base model.


rule evaluate:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        record=f"{RUN}/train.json",
        adapter=ADAPTER,
        model=model_inputs,
    output:
        f"{RUN}/eval.json",
    params:
        spec=model_spec,
        batch_size=config["eval"]["batch_size"],
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/evaluate/{{model}}/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_base:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        model=model_inputs,
    output:
        BASE_EVAL,
    params:
        spec=model_spec,
        batch_size=config["eval"]["batch_size"],
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/evaluate/{{model}}/base/{{task}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}/base/{{task}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/evaluate.py"
