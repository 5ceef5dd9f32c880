from _job import job_log

from experiment import analysis_tables, figures
from experiment.records import write_text

with job_log(snakemake):
    runs = analysis_tables.feature_map(list(snakemake.input.runs), list(snakemake.input.reference))
    summary = analysis_tables.feature_map_summary(runs)
    write_text(snakemake.output.csv, runs.to_csv(index=False, float_format="%.4g"))
    write_text(snakemake.output.md, analysis_tables.feature_map_markdown(summary))
    figures.grouped_bars(summary, sorted(summary["method"].unique()), snakemake.output.figure)
