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
        **JOB_RESOURCES,
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
        figure=report(f"{FIGURES}/length_sweep.png", caption="../report/length_sweep.rst", category="Analyses"),
    log:
        f"{LOGS}/length_sweep.log",
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/length_sweep.py"


rule analyses:
    input:
        analysis_targets(),


rule attention_maps:
    input:
        unpack(lambda w: single_seed_analysis_inputs("attention_maps")),
    output:
        csv=f"{ANALYSES}/attention_maps.csv",
        figure=report(f"{FIGURES}/attention_maps.png", caption="../report/attention_maps.rst", category="Analyses"),
    params:
        spec=model_spec(FIRST_MODEL),
        settings=ANALYSIS.get("attention_maps", {}),
        adapters=lambda w: analysis_adapters("attention_maps"),
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/attention_maps.log",
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/attention_maps.py"


rule expressiveness:
    input:
        unpack(lambda w: single_seed_analysis_inputs("expressiveness")),
    output:
        csv=f"{ANALYSES}/expressiveness.csv",
        figure=report(f"{FIGURES}/expressiveness.png", caption="../report/expressiveness.rst", category="Analyses"),
    params:
        spec=model_spec(FIRST_MODEL),
        settings=ANALYSIS.get("expressiveness", {}),
        adapters=lambda w: analysis_adapters("expressiveness"),
    threads: config.get("threads", 1)
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/expressiveness.log",
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/expressiveness.py"
