from pathlib import Path

from _job import job_log

from experiment import adapters, jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w = snakemake.wildcards
    out = snakemake.output
    jobs.sweep_learning_rate(model_name=w.model, model_spec=snakemake.params.spec, method=w.method,
                             overrides=snakemake.params.overrides, task=w.task, task_dir=Path(snakemake.input.meta).parent,
                             seed=snakemake.params.seed, multipliers=snakemake.params.multipliers,
                             max_extensions=snakemake.params.max_extensions,
                             train_config=snakemake.params.train, batch_size=snakemake.params.batch_size,
                             out_path=out.choice, run={"adapter_dir": out.adapter, "record_path": out.record, "eval_path": out.evaluation,
                                                       "keep_weights": adapters.keeps_weights(w.method, snakemake.config)},
                             device=snakemake.config.get("device", "cpu"))
