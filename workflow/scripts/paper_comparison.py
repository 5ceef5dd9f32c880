import pandas as pd
from _job import job_log

from experiment import tables
from experiment.records import write_text

with job_log(snakemake):
    summary = pd.read_csv(snakemake.input.main, comment="#")
    write_text(snakemake.output[0], tables.paper_comparison(summary, snakemake.input.reported, snakemake.params.paper_models,
                                                            snakemake.params.paper_datasets))
