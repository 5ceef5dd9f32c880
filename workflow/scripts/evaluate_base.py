from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    jobs.evaluate_run(model_name=snakemake.wildcards.model, model_spec=snakemake.params.spec, task=snakemake.wildcards.task,
                      task_dir=Path(snakemake.input.meta).parent, split="test", batch_size=snakemake.params.batch_size,
                      record_path=snakemake.output[0], device=snakemake.config.get("device", "cpu"))
