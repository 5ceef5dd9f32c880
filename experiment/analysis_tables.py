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


MAIN_GRID_VARIANT = "default (main grid)"


def feature_map(variant_paths: list[Path], reference_paths: list[Path]) -> pd.DataFrame:
    """One row per (task, variant, seed): test accuracy (%) and trainable parameters. The
    reference rows are the main grid's Prefix-Tuning+ runs (its default feature map and query)."""
    def row(record, variant, result):
        ok = record["status"] == "ok"
        return {"model": record["model"], "task": record["task"], "variant": variant, "seed": record["seed"],
                "status": record["status"], "accuracy": result["accuracy"] * 100 if ok else float("nan"),
                "trainable_parameters": record.get("trainable_parameters", 0)}

    rows = [row(r, r["variant"], r.get("test", {})) for r in map(read_json, variant_paths)]
    rows += [row(r, MAIN_GRID_VARIANT, r) for r in map(read_json, reference_paths)]
    return pd.DataFrame(rows)


def feature_map_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and run count per (model, task, variant) over successful runs."""
    ok = runs[runs["status"] == "ok"]
    summary = ok.groupby(["model", "task", "variant"]).agg(
        mean=("accuracy", "mean"), sd=("accuracy", "std"), runs=("accuracy", "size"),
        trainable_parameters=("trainable_parameters", "first")).reset_index()
    return summary.rename(columns={"variant": "method"})  # the column name figures.grouped_bars groups by


def feature_map_markdown(summary: pd.DataFrame) -> str:
    cells = summary.assign(cell=[f"{m:.1f} ± {s:.1f} ({n})" for m, s, n in zip(summary["mean"], summary["sd"].fillna(0), summary["runs"])])
    table = cells.pivot_table(index=["model", "task"], columns="method", values="cell", aggfunc="first")
    params = summary.groupby("method")["trainable_parameters"].first()
    note = "Trainable parameters: " + ", ".join(f"{m} {int(p):,}" for m, p in params.items())
    return ("Test accuracy (%), mean ± sd over seeds (runs). Variants of Prefix-Tuning+ trained at the learning rate "
            "chosen for its default on each task.\n\n" + table.to_markdown() + "\n\n" + note + ".\n")


def iid_ood(ood_paths: list[Path], iid_paths: list[Path], base_paths: list[Path]) -> pd.DataFrame:
    """One row per (method, seed): accuracy (%) on the task trained on (IID) and on the other
    task (OOD); the untrained base model is one more point."""
    def accuracy(record):
        return record["accuracy"] * 100 if record["status"] == "ok" else float("nan")

    iid = {}
    for path in iid_paths:
        record = read_json(path)
        iid[(record["method"], record["seed"])] = accuracy(record)
    rows = []
    for path in ood_paths:
        record = read_json(path)
        key = (record["method"], record["seed"])
        rows.append({"model": record["model"], "method": key[0], "seed": key[1], "iid_task": record["trained_on"],
                     "ood_task": record["task"], "iid": iid[key], "ood": accuracy(record)})
    base = {r["task"]: accuracy(r) for r in map(read_json, base_paths)}
    if rows:
        rows.append({**{k: rows[0][k] for k in ("model", "iid_task", "ood_task")}, "method": "base", "seed": None,
                     "iid": base[rows[0]["iid_task"]], "ood": base[rows[0]["ood_task"]]})
    return pd.DataFrame(rows)
