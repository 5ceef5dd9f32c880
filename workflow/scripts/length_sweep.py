from _job import job_log

from experiment import analysis_tables, figures
from experiment.records import write_text

with job_log(snakemake):
    accuracy, alpha = analysis_tables.length_sweep(list(snakemake.input))
    write_text(snakemake.output.accuracy, accuracy.to_csv(index=False))
    write_text(snakemake.output.alpha, alpha.to_csv(index=False))
    figures.length_sweep(accuracy, alpha, snakemake.output.figure)
