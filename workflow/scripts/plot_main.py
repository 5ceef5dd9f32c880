import pandas as pd
from _job import job_log

from experiment import figures

with job_log(snakemake):
    summary = pd.read_csv(snakemake.input[0], comment="#")
    figures.grouped_bars(summary, snakemake.params.methods, snakemake.output[0])
