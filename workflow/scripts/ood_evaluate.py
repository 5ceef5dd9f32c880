from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w = snakemake.wildcards
    jobs.evaluate_run(model_name=w.model, model_spec=snakemake.params.spec, task=snakemake.params.ood_task,
                      task_dir=Path(snakemake.input.meta).parent, split="test", batch_size=snakemake.params.batch_size,
                      record_path=snakemake.output[0], adapter_dir=snakemake.input.adapter,
                      train_record=snakemake.input.record, method=w.method, seed=int(w.seed),
                      device=snakemake.config.get("device", "cpu"))
