from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w = snakemake.wildcards
    trained = "adapter" in snakemake.input.keys()
    jobs.evaluate_run(model_name=w.model, model_spec=snakemake.params.spec, task=w.task,
                      task_dir=Path(snakemake.input.meta).parent, split="test",
                      batch_size=snakemake.params.batch_size, record_path=snakemake.output[0],
                      adapter_dir=snakemake.input.adapter if trained else None,
                      train_record=snakemake.input.record if trained else None,
                      method=w.method if trained else "base", seed=int(w.seed) if trained else None,
                      device=snakemake.config.get("device", "cpu"))
