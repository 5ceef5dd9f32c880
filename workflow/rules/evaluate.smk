# lm-evaluation-harness on the untrained base model (trained runs are scored in their own job: train.smk).


rule evaluate_base:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        model=model_inputs,
    output:
        BASE_EVAL,
    params:
        spec=model_spec,
        batch_size=lambda w: eval_batch_size(w.task),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/evaluate/{{model}}/base/{{task}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}/base/{{task}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/evaluate_base.py"
