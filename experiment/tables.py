"""Run records -> pandas -> the paper's tables (CSV, Markdown, LaTeX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from experiment.records import git_state, read_json, write_text

REFERENCE_METHOD = "prefix_tuning_plus"
BASE = "base"


def load_records(paths: list[Path]) -> pd.DataFrame:
    """One row per evaluation record (the per-example samples are dropped)."""
    rows = []
    for path in paths:
        record = read_json(path)
        record.pop("samples", None)
        rows.append({k: v for k, v in record.items() if not isinstance(v, dict)} | {"record": str(path)})
    return pd.DataFrame(rows)


def bootstrap_ci(values: np.ndarray, iters: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap of the mean over seeds."""
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(iters, len(values)), replace=True).mean(axis=1)
    return tuple(float(q) for q in np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd, 95% CI and run count per (model, task, method) over successful runs, plus a
    paired t-test across seeds of Prefix-Tuning+ against each other method."""
    ok = records[records["status"] == "ok"]
    failed = records[records["status"] != "ok"].groupby(["model", "task", "method"]).size()
    rows = []
    for (model, task, method), group in ok.groupby(["model", "task", "method"]):
        acc = group["accuracy"].to_numpy(dtype=float) * 100
        low, high = bootstrap_ci(acc)
        rows.append({
            "model": model, "task": task, "method": method,
            "mean": acc.mean(), "sd": acc.std(ddof=1) if len(acc) > 1 else 0.0,
            "ci_low": low, "ci_high": high, "runs": len(acc),
            "failed_runs": int(failed.get((model, task, method), 0)),
            "p_vs_reference": _paired_p(ok, model, task, method),
        })
    return pd.DataFrame(rows)


def _paired_p(ok: pd.DataFrame, model: str, task: str, method: str) -> float:
    if method in (REFERENCE_METHOD, BASE):
        return float("nan")
    cell = ok[(ok["model"] == model) & (ok["task"] == task)]
    ref = cell[cell["method"] == REFERENCE_METHOD].set_index("seed")["accuracy"]
    other = cell[cell["method"] == method].set_index("seed")["accuracy"]
    seeds = ref.index.intersection(other.index)
    if len(seeds) < 2 or np.allclose(ref[seeds].to_numpy() - other[seeds].to_numpy(), 0):
        return float("nan")
    return float(stats.ttest_rel(ref[seeds], other[seeds]).pvalue)


def main_table(summary: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Rows (model, task) plus an average row per model; columns methods; cells 'mean ± sd'."""
    columns = [m for m in [BASE, *methods] if m in set(summary["method"])]
    cells = summary.assign(text=summary.apply(_cell, axis=1))
    parts = []
    for model, block in cells.groupby("model"):
        table = block.pivot(index="task", columns="method", values="text").reindex(columns=columns)
        average = block.groupby("method")["mean"].mean().reindex(columns)
        table.loc["average"] = [f"{v:.1f}" if pd.notna(v) else "" for v in average]
        parts.append(table.assign(model=model).reset_index().set_index(["model", "task"]))
    return pd.concat(parts)


def _cell(row) -> str:
    text = f"{row['mean']:.1f} ± {row['sd']:.1f}"
    if row["method"] != BASE and row["runs"] > 0:
        text += f" (n={row['runs']})"
    if pd.notna(row["p_vs_reference"]) and row["p_vs_reference"] < 0.05:
        text += " *"
    return text


def paper_reference(path: Path) -> str:
    """The paper's own Table 1 (evals/paper_reported_table1.csv) as Markdown, marked as reported."""
    reported = pd.read_csv(path, comment="#")
    return (
        "Reported by the paper (arXiv 2506.13674 v3, Table 1; not reproduced by this suite): "
        "accuracy (%), mean of 5 runs.\n\n" + reported.to_markdown(index=False) + "\n"
    )


def paper_comparison(summary: pd.DataFrame, reported_csv: Path, paper_models: dict[str, str], paper_datasets: dict[str, str]) -> str:
    """Our means next to the paper's reported Table 1, for the models and tasks a profile maps to
    its rows (config key ``paper_table1``). The paper's BigBench row is one number over unnamed
    subtasks; ours is the mean of our per-task means for the BIG-bench tasks we ran."""
    reported = pd.read_csv(reported_csv, comment="#").melt(id_vars=["dataset", "model"], var_name="method", value_name="reported")
    ours = summary[summary["model"].isin(paper_models) & summary["task"].isin(paper_datasets)]
    ours = ours.assign(dataset=ours["task"].map(paper_datasets), paper_model=ours["model"].map(paper_models))
    grouped = ours.groupby(["dataset", "paper_model", "method"]).agg(
        ours=("mean", "mean"), tasks=("task", lambda t: ", ".join(sorted(t)))).reset_index()
    joined = reported.merge(grouped.rename(columns={"paper_model": "model"}), on=["dataset", "model", "method"], how="inner")
    if joined.empty:
        raise ValueError(f"no (dataset, model) of {reported_csv} matches this profile's paper_table1 "
                         f"(models {paper_models}, datasets {sorted(set(paper_datasets.values()))})")
    joined["difference"] = joined["ours"] - joined["reported"]
    return ("Ours (this suite, this profile) next to the paper's reported Table 1 (arXiv 2506.13674 v3; not reproduced "
            "by this suite): accuracy (%), mean over seeds; for a dataset with several of our tasks, the mean of their "
            "means.\n\n" + joined.to_markdown(index=False, floatfmt=".1f") + "\n")


def write_tables(summary: pd.DataFrame, table: pd.DataFrame, out_csv: Path, out_md: Path, out_tex: Path) -> None:
    commit = git_state()
    stamp = f"built from commit {commit['commit']}{' (dirty)' if commit['dirty'] else ''}"
    write_text(out_csv, f"# {stamp}\n" + summary.to_csv(index=False, float_format="%.4f"))
    note = (
        "Accuracy (%) on the test split, mean ± sd over seeds (n = successful runs). "
        "`*`: paired t-test across seeds against prefix_tuning_plus, p < 0.05. "
        f"`base`: the model without training. Table {stamp}."
    )
    write_text(out_md, table.reset_index().to_markdown(index=False) + "\n\n" + note + "\n")
    latex = table.reset_index().to_latex(index=False, escape=True, caption=note, label="tab:main")
    write_text(out_tex, latex)
