import pandas as pd
from _job import job_log

from experiment import cost, records

with job_log(snakemake):
    s = snakemake.params.settings
    device = snakemake.config.get("device", "cpu")
    cost_settings = dict(batch_size=s["batch_size"], seq_len=s["seq_len"], device=device,
                         dtype=s.get("dtype", "float32"), shrink=s.get("shrink"))
    rows, resolution = cost.measure(snakemake.params.spec, snakemake.params.methods, steps=s["steps"],
                                    repeats=s["repeats"], new_tokens=s["new_tokens"], **cost_settings)
    for row in rows:
        row["peak_memory_mib"] = cost.peak_memory(snakemake.params.spec, row["method"], steps=s["steps"], **cost_settings)
    table = pd.DataFrame(cost.with_memory_ratios(rows))
    hardware = records.provenance()["hardware"]["device"]
    setting = (f"batch {s['batch_size']} x {s['seq_len']} tokens, {s['new_tokens']} decoded tokens, {s['repeats']} interleaved "
               f"rounds, on {hardware}; ratios are paired medians over rounds [95% bootstrap interval]; decode resolution "
               f"(the base model against itself): {resolution['median']:.3f} [{resolution['low']:.3f}, {resolution['high']:.3f}]")
    records.write_text(snakemake.output.csv, f"# {setting}\n" + table.to_csv(index=False, float_format="%.6g"))
    records.write_text(snakemake.output.md, table.to_markdown(index=False, floatfmt=".4g") + f"\n\n{setting}.\n")
