from _job import job_log

from experiment import tables
from experiment.records import write_text

with job_log(snakemake):
    write_text(snakemake.output[0], tables.paper_reference(snakemake.input[0]))
