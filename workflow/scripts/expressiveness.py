from pathlib import Path

import pandas as pd
from _job import job_log

from experiment import figures, jobs
from experiment.records import write_text

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    s = snakemake.params.settings
    spectra = pd.DataFrame(jobs.expressiveness(model_spec=snakemake.params.spec, task_dir=Path(snakemake.input.meta).parent,
                                               adapter_dirs=snakemake.params.adapters, layers=s["layers"],
                                               examples=s["examples"], device=snakemake.config.get("device", "cpu")))
    write_text(snakemake.output.csv, spectra.to_csv(index=False, float_format="%.6g"))
    figures.expressiveness(spectra, snakemake.output.figure)
