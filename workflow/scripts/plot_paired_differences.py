import pandas as pd
from _job import job_log

from experiment import figures, tables

with job_log(snakemake):
    paired = pd.read_csv(snakemake.input[0], comment="#")
    figures.forest(paired, tables.MARGIN, tables.NAMES, snakemake.output[0])
