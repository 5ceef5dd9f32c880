# All evaluation records -> the main table (CSV, Markdown, LaTeX), the paired differences against
# Prefix-Tuning+ and macro-F1 -> their figures.


rule aggregate:
    input:
        all_eval_records(),
    output:
        csv=report(f"{TABLES}/main.csv", caption="../report/main_table.rst", category="Main table"),
        md=f"{TABLES}/main.md",
        tex=f"{TABLES}/main.tex",
        paired_csv=report(f"{TABLES}/paired_differences.csv", caption="../report/paired_differences.rst", category="Main table"),
        paired_md=f"{TABLES}/paired_differences.md",
        macro_f1_csv=f"{TABLES}/macro_f1.csv",
        macro_f1_md=f"{TABLES}/macro_f1.md",
    params:
        methods=METHODS,
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCH}/aggregate.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/aggregate.py"


rule paper_reference:
    input:
        "evals/paper_reported_table1.csv",
    output:
        f"{TABLES}/paper_reported.md",
    log:
        f"{LOGS}/paper_reference.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/paper_reference.py"


rule plot_main:
    input:
        f"{TABLES}/main.csv",
    output:
        report(f"{FIGURES}/main.png", caption="../report/main_figure.rst", category="Main table"),
    params:
        methods=["base"] + METHODS,
    log:
        f"{LOGS}/plot_main.log",
    benchmark:
        f"{BENCH}/plot_main.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/plot_main.py"


rule plot_paired_differences:
    input:
        f"{TABLES}/paired_differences.csv",
    output:
        report(f"{FIGURES}/paired_differences.png", caption="../report/paired_differences.rst", category="Main table"),
    log:
        f"{LOGS}/plot_paired_differences.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/plot_paired_differences.py"


rule paper_comparison:
    input:
        main=f"{TABLES}/main.csv",
        reported="evals/paper_reported_table1.csv",
    output:
        f"{TABLES}/paper_vs_ours.md",
    params:
        paper_models=PAPER_TABLE1.get("models", {}),
        paper_datasets=PAPER_TABLE1.get("datasets", {}),
    log:
        f"{LOGS}/paper_comparison.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/paper_comparison.py"
