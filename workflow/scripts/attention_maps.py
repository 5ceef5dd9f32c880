from pathlib import Path

import pandas as pd
from _job import job_log

from experiment import figures, jobs
from experiment.records import write_text

with job_log(snakemake):
    jobs.set_threads(snakemake.threads)
    s = snakemake.params.settings
    maps = jobs.attention_maps(model_spec=snakemake.params.spec, task_dir=Path(snakemake.input.meta).parent,
                               adapter_dirs=snakemake.params.adapters, layer=s["layer"], example=s["example"],
                               device=snakemake.config.get("device", "cpu"))
    rows = [{"model": name, "query": q, "key": k, "weight": float(w), "prefix_keys": prefix}
            for name, (matrix, prefix) in maps.items() for (q, k), w in pd.DataFrame(matrix).stack().items()]
    write_text(snakemake.output.csv, pd.DataFrame(rows).to_csv(index=False, float_format="%.6g"))
    figures.attention_maps(maps, s["layer"], snakemake.output.figure)
