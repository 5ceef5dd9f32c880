from pathlib import Path

from _job import job_log

from experiment import downloads

with job_log(snakemake):
    out = Path(snakemake.output[0])
    downloads.download_distribution(snakemake.params.dist["requirement"], out.name, snakemake.params.dist["sha256"], out)
