from pathlib import Path

from _job import job_log

from experiment import jobs

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    w, s = snakemake.wildcards, snakemake.params.settings
    jobs.length_sweep_run(model_name=w.model, model_spec=snakemake.params.spec, method=w.method, task=w.task,
                          task_dir=Path(snakemake.input.meta).parent, seed=int(w.seed), adapter_dir=snakemake.input.adapter,
                          lengths=s["lengths"], examples=s["examples"], alpha_examples=s["alpha_examples"],
                          batch_size=snakemake.params.batch_size, out_path=snakemake.output[0],
                          device=snakemake.config.get("device", "cpu"))
