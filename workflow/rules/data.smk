# Benchmark -> train/dev/test JSONL (+ task.json with the label set) per task.


rule prepare_data:
    input:
        spec=task_spec_file,
        source=task_source,
    output:
        train=f"{DATA}/train.jsonl",
        dev=f"{DATA}/dev.jsonl",
        test=f"{DATA}/test.jsonl",
        meta=TASK_META,
        lm_eval_task=f"{DATA}/{{task}}.yaml",
    params:
        data=config["data"],
        source_overrides=lambda w: TASK_SOURCES.get(w.task, {}),
    log:
        f"{LOGS}/prepare_data/{{task}}.log",
    benchmark:
        f"{BENCH}/prepare_data/{{task}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/prepare_data.py"
