from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w = snakemake.wildcards
    jobs.sweep_point(model_spec=snakemake.params.spec, method=w.method, overrides=snakemake.params.overrides,
                     task=w.task, task_dir=Path(snakemake.input.meta).parent, seed=snakemake.params.seed,
                     learning_rate=float(w.lr), train_config=snakemake.params.train,
                     batch_size=snakemake.params.batch_size, record_path=snakemake.output[0],
                     device=snakemake.config.get("device", "cpu"))
