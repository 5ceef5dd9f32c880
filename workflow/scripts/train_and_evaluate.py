from pathlib import Path

from _job import job_log

from experiment import adapters, jobs
from experiment.records import read_json

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w = snakemake.wildcards
    jobs.train_run(model_name=w.model, model_spec=snakemake.params.spec, method=w.method,
                   overrides=snakemake.params.overrides, task=w.task, task_dir=Path(snakemake.input.meta).parent,
                   seed=int(w.seed), learning_rate=read_json(snakemake.input.lr)["learning_rate"],
                   train_config=snakemake.params.train, adapter_dir=snakemake.output.adapter,
                   record_path=snakemake.output.record, eval_path=snakemake.output.evaluation,
                   batch_size=snakemake.params.batch_size, device=snakemake.config.get("device", "cpu"),
                   keep_weights=adapters.keeps_weights(w.method, snakemake.config))
