"""Analysis records -> long-form tables (the data behind each analysis figure)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiment.records import read_json


def length_sweep(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    accuracy, alpha = [], []
    for path in paths:
        record = read_json(path)
        keys = {k: record[k] for k in ("model", "method", "task", "seed")}
        accuracy += [{**keys, "context_tokens": int(n), "accuracy": a} for n, a in record["accuracy"].items()]
        for n, shares in record.get("prefix_attention_share", {}).items():
            alpha += [{**keys, "context_tokens": int(n), "layer": layer, "share": s} for layer, s in enumerate(shares)]
    return pd.DataFrame(accuracy), pd.DataFrame(alpha, columns=["model", "method", "task", "seed", "context_tokens", "layer", "share"])
