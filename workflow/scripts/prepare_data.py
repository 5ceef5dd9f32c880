from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    d = snakemake.params.data
    source = snakemake.input.source[0] if snakemake.input.source else None
    jobs.prepare_task(snakemake.wildcards.task, source, Path(snakemake.output.meta).parent,
                      dev_size=d["dev_size"], test_size=d["test_size"], seed=d["seed"],
                      source_overrides=snakemake.params.source_overrides)
