from _job import job_log

from experiment import downloads

with job_log(snakemake):
    downloads.extract_from_tar(snakemake.input[0], snakemake.params.member, snakemake.output[0])
