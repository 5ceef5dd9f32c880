# All evaluation records -> the main table (CSV, Markdown, LaTeX) -> its figure.


rule aggregate:
    input:
        all_eval_records(),
    output:
        csv=f"{TABLES}/main.csv",
        md=f"{TABLES}/main.md",
        tex=f"{TABLES}/main.tex",
    params:
        methods=METHODS,
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCH}/aggregate.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/aggregate.py"


rule plot_main:
    input:
        f"{TABLES}/main.csv",
    output:
        f"{FIGURES}/main.png",
    params:
        methods=["base"] + METHODS,
    log:
        f"{LOGS}/plot_main.log",
    benchmark:
        f"{BENCH}/plot_main.tsv"
    conda:
        "../../envs/suite.yaml"
    script:
        "../scripts/plot_main.py"
