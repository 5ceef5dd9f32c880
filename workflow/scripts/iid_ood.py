from _job import job_log

from experiment import analysis_tables, figures
from experiment.records import write_text

with job_log(snakemake):
    points = analysis_tables.iid_ood(list(snakemake.input.ood), list(snakemake.input.iid), list(snakemake.input.base))
    write_text(snakemake.output.csv, points.to_csv(index=False, float_format="%.4g"))
    figures.iid_ood(points, snakemake.output.figure)
