# The paper's analyses, on adapters trained by the main grid. `snakemake analyses` runs them all.


rule length_sweep_run:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        adapter=ADAPTER,
        model=model_inputs,
    output:
        f"{ANALYSES}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.json",
    params:
        spec=model_spec,
        settings=ANALYSIS.get("length_sweep", {}),
        batch_size=config["eval"]["batch_size"],
    threads: config.get("threads", 1)
    resources:
        gpu=1 if config.get("device") == "cuda" else 0,
    log:
        f"{LOGS}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/length_sweep_run.py"


rule length_sweep:
    input:
        lambda w: expand(
            f"{ANALYSES}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.json",
            model=MODELS,
            task=ANALYSIS["length_sweep"]["task"],
            method=ANALYSIS["length_sweep"]["methods"],
            seed=ANALYSIS["length_sweep"]["seeds"],
        ),
    output:
        accuracy=f"{ANALYSES}/length_sweep_accuracy.csv",
        alpha=f"{ANALYSES}/length_sweep_alpha.csv",
        figure=f"{FIGURES}/length_sweep.png",
    log:
        f"{LOGS}/length_sweep.log",
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/length_sweep.py"


rule analyses:
    input:
        analysis_targets(),
