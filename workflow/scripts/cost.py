import pandas as pd
from _job import job_log

from experiment import cost, jobs, records

with job_log(snakemake):
    # The rule holds every core so that nothing runs beside it; torch computes on the profile's
    # `threads` (1 by default, as in the training jobs), leaving a core to the rest of the machine.
    threads = snakemake.config.get("threads", 1)
    jobs.set_threads(threads)
    s = snakemake.params.settings
    device = snakemake.config.get("device", "cpu")
    cost_settings = dict(batch_size=s["batch_size"], seq_len=s["seq_len"], device=device,
                         dtype=s.get("dtype", "float32"), shrink=s.get("shrink"))
    rows, resolution = cost.measure(snakemake.params.spec, snakemake.params.methods, steps=s["steps"],
                                    repeats=s["repeats"], decode_steps=s["decode_steps"], processes=s["processes"], **cost_settings)
    for row in rows:
        row["peak_memory_mib"] = cost.peak_memory(snakemake.params.spec, row["method"], steps=s["steps"], **cost_settings)
    rows = cost.with_memory_ratios(rows)
    hardware = records.provenance()["hardware"]["device"]
    setting = (f"batch {s['batch_size']} x {s['seq_len']} tokens, {s['processes']} fresh processes x {s['repeats']} interleaved rounds "
               f"({s['processes']} x {s['repeats'] * s['decode_steps']} of one decode step after a {cost.prompt_length(s['seq_len'])}-token "
               f"prompt), {threads} torch thread(s), {s.get('dtype', 'float32')}, on {hardware}")
    records.write_text(snakemake.output.csv, f"# {setting}\n" + pd.DataFrame(rows).to_csv(index=False, float_format="%.6g"))
    records.write_text(snakemake.output.resolution, pd.DataFrame(resolution).to_csv(index=False, float_format="%.6g"))
    records.write_text(snakemake.output.md, cost.markdown(rows, resolution, setting))
