from _job import job_log

from experiment import jobs

with job_log(snakemake):
    w = snakemake.wildcards
    jobs.select_learning_rate(list(snakemake.input), snakemake.output[0], method=w.method, task=w.task)
