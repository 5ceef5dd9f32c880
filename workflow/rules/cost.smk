# Cost of every method side by side (`snakemake cost`), and accuracy against cost.


rule cost:
    input:
        model=cost_model_inputs,
        code=[relative(methods.source_file(m)) for m in METHODS],
    output:
        csv=report(f"{OUT}/cost/cost.csv", caption="../report/cost.rst", category="Cost"),
        resolution=f"{OUT}/cost/resolution.csv",
        md=f"{OUT}/cost/cost.md",
    params:
        spec=cost_model_spec() if "cost" in config else None,
        settings=config.get("cost", {}),
        methods=METHODS,
    threads: all_local_cores
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/cost.log",
    benchmark:
        f"{BENCH}/cost.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/cost.py"


rule cost_pareto:
    input:
        cost=f"{OUT}/cost/cost.csv",
        accuracy=f"{TABLES}/main.csv",
    output:
        report(f"{FIGURES}/cost_pareto.png", caption="../report/cost_pareto.rst", category="Cost"),
    params:
        model=cost_model_name() if "cost" in config else None,
    log:
        f"{LOGS}/cost_pareto.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/cost_pareto.py"
