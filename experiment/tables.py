"""Run records -> pandas -> the suite's tables (CSV, Markdown, LaTeX).

The headline is the paired difference Prefix-Tuning+ minus each other method, per task and
averaged over tasks, with an interval over both the seeds and the test examples
(``experiment.statistics``). The main table gives each cell's accuracy with the same kind of
interval, the majority-class reference and how many of the cell's runs collapsed onto one
answer (``experiment.outcomes``); macro-F1 is a second table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from experiment import outcomes, statistics
from experiment.records import git_state, read_json, write_text

REFERENCE_METHOD = "prefix_tuning_plus"
BASE = "base"
MAJORITY = "majority_class"
MARGIN = 5.0
"""Points: the size of difference the suite is asked to settle (README, "The current answer"; docs/statistics.md)."""
NAMES = {"prefix_tuning_plus": "Prefix-Tuning+", "prefix_tuning": "Prefix-Tuning", "lora": "LoRA",
         "full_finetune": "full fine-tuning", "base": "base model", MAJORITY: "majority class"}
ABOVE, BELOW = "▲", "▼"


def name(method: str) -> str:
    return NAMES.get(method, method)


def load_records(paths: list[Path]) -> pd.DataFrame:
    """One row per evaluation record, with its per-example ``samples`` (a list of dicts)."""
    rows = []
    for path in paths:
        record = read_json(path)
        rows.append({k: v for k, v in record.items() if not isinstance(v, dict)} | {"record": str(path)})
    return pd.DataFrame(rows)


def cells(records: pd.DataFrame) -> dict[tuple[str, str, str], outcomes.Cell]:
    """(model, task, method) -> the outcome matrix of its successful runs."""
    ok = records[records["status"] == "ok"]
    return {key: outcomes.cell(group) for key, group in ok.groupby(["model", "task", "method"])}


@dataclass(frozen=True)
class Report:
    summary: pd.DataFrame
    """Per (model, task, method): accuracy and interval, runs, collapses, the test against Prefix-Tuning+."""
    averages: pd.DataFrame
    """Per (model, method): the mean over tasks and its interval."""
    paired: pd.DataFrame
    """Prefix-Tuning+ minus each other method, per task and averaged over tasks."""
    macro_f1: pd.DataFrame
    """Per (model, task, method): macro-F1 over seeds."""


def build(records: pd.DataFrame) -> Report:
    table = cells(records)
    paired = paired_differences(table)
    summary, averages = summarise(records, table, paired)
    return Report(summary, averages, paired, macro_f1_summary(table))


def paired_differences(table: dict) -> pd.DataFrame:
    """Prefix-Tuning+ minus each other trained method on the seeds both ran, in points: per
    task (the crossed estimate of the seeds x examples matrix of differences, the same test
    examples for both) and averaged over the tasks both ran. Holm's adjustment runs over every
    row of this table, per-task and average, all models: the family of tests the suite shows."""
    rows, averages = [], {}
    for (model, task, method), other in table.items():
        reference = table.get((model, task, REFERENCE_METHOD))
        if method in (REFERENCE_METHOD, BASE) or reference is None:
            continue
        if other.ids != reference.ids:
            raise ValueError(f"{model}/{task}: {method} and {REFERENCE_METHOD} were not scored on the same test examples")
        seeds = [s for s in reference.seeds if s in other.seeds]
        if len(seeds) < 2:
            continue
        pick = lambda cell: cell.correct[[cell.seeds.index(s) for s in seeds]].astype(float)  # noqa: E731
        estimate = statistics.crossed_mean((pick(reference) - pick(other)) * 100)
        rows.append(_difference_row(model, task, method, estimate, len(seeds)))
        averages.setdefault((model, method), []).append(estimate)
    for (model, method), estimates in averages.items():
        rows.append(_difference_row(model, "average", method, statistics.average(estimates), len(estimates)))
    paired = pd.DataFrame(rows, columns=["model", "task", "method", "difference", "ci_low", "ci_high", "se", "df",
                                         "p", "mdd", "paired"])
    paired["p_holm"] = statistics.holm(paired["p"])
    paired["verdict"] = [statistics.verdict(lo, hi, MARGIN) for lo, hi in zip(paired["ci_low"], paired["ci_high"])]
    return paired


def _difference_row(model, task, method, estimate: statistics.Estimate, paired: int) -> dict:
    low, high = estimate.interval()
    return {"model": model, "task": task, "method": method, "difference": float(estimate.mean),
            "ci_low": float(low), "ci_high": float(high), "se": float(estimate.se), "df": float(estimate.df),
            "p": float(estimate.p_value()), "mdd": float(estimate.minimum_detectable()), "paired": paired}


def sentence(row) -> str:
    """'Prefix-Tuning+ − LoRA: −5.8 [−12.0, 0.4] points: not resolved at 5 points'."""
    number = lambda v: f"{v:.1f}".replace("-", "−")  # noqa: E731
    interval = _interval(row["ci_low"], row["ci_high"]).replace("-", "−")
    return f"{name(REFERENCE_METHOD)} − {name(row['method'])}: {number(row['difference'])} {interval} points: {row['verdict']}"


def _cell_interval(cell: outcomes.Cell) -> tuple[float, float, statistics.Estimate | None]:
    """A cell's mean accuracy: the crossed seeds x examples estimate; a single run (the base
    model) has only its test sample, a binomial proportion: scipy's Wilson interval."""
    if len(cell.seeds) > 1:
        estimate = statistics.crossed_mean(cell.correct * 100.0)
        low, high = np.clip(estimate.interval(), 0, 100)  # an accuracy lies in [0, 100]
        return float(low), float(high), estimate
    ci = stats.binomtest(int(cell.correct.sum()), cell.correct.size).proportion_ci(statistics.LEVEL, method="wilson")
    return ci.low * 100, ci.high * 100, None


def summarise(records: pd.DataFrame, table: dict, paired: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell: mean and sd over runs, 95% interval, runs (failed, collapsed), the
    majority-class reference, and the test against Prefix-Tuning+ from ``paired``. Per model
    and method: the mean over tasks, with the interval of a mean of independent task estimates."""
    failed = records[records["status"] != "ok"].groupby(["model", "task", "method"]).size()
    # Records from before the stopping rule and the lenient score have neither column.
    ok = records[records["status"] == "ok"].reindex(columns=["model", "task", "method", "converged", "lenient_accuracy",
                                                             "retrained_after_divergence"])
    not_converged = ok[ok["converged"].eq(False)].groupby(["model", "task", "method"]).size()
    retrained = ok[ok["retrained_after_divergence"].eq(True)].groupby(["model", "task", "method"]).size()
    lenient = ok.groupby(["model", "task", "method"])["lenient_accuracy"].mean() * 100
    tests = paired.set_index(["model", "task", "method"])
    rows, per_method = [], {}
    for (model, task, method), cell in table.items():
        low, high, estimate = _cell_interval(cell)
        test = tests.loc[(model, task, method)] if (model, task, method) in tests.index else {}
        rows.append({
            "model": model, "task": task, "method": method,
            "mean": cell.accuracy.mean(), "sd": cell.accuracy.std(ddof=1) if len(cell.seeds) > 1 else 0.0,
            "ci_low": low, "ci_high": high, "runs": len(cell.seeds),
            "failed_runs": int(failed.get((model, task, method), 0)),
            "collapsed_runs": int(cell.collapsed().sum()),
            "not_converged_runs": int(not_converged.get((model, task, method), 0)),
            "retrained_runs": int(retrained.get((model, task, method), 0)),
            "lenient_accuracy": lenient.get((model, task, method), np.nan),
            MAJORITY: cell.majority_reference()[0],
            "difference_vs_reference": test.get("difference", np.nan),
            "p_vs_reference": test.get("p", np.nan), "p_holm": test.get("p_holm", np.nan),
        })
        if estimate is not None:
            per_method.setdefault((model, method), []).append(estimate)
    averages = []
    for (model, method), estimates in per_method.items():
        estimate = statistics.average(estimates)
        low, high = np.clip(estimate.interval(), 0, 100)
        averages.append({"model": model, "method": method, "tasks": len(estimates), "mean": float(estimate.mean),
                         "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows), pd.DataFrame(averages)


def macro_f1_summary(table: dict) -> pd.DataFrame:
    """Macro-F1 (points) per cell: mean and sd over runs, with the majority-class reference."""
    rows = []
    for (model, task, method), cell in table.items():
        scores = cell.macro_f1()
        rows.append({"model": model, "task": task, "method": method, "macro_f1": scores.mean(),
                     "sd": scores.std(ddof=1) if len(scores) > 1 else 0.0, "runs": len(scores),
                     MAJORITY: cell.majority_reference()[1]})
    return pd.DataFrame(rows)


def _mark(p_holm: float, difference: float) -> str:
    """▲ where the method is above Prefix-Tuning+ (the difference Prefix-Tuning+ minus it is
    negative), ▼ where below, if Holm's adjusted p < 1 - LEVEL; nothing otherwise."""
    if pd.isna(p_holm) or p_holm >= 1 - statistics.LEVEL:
        return ""
    return f" {ABOVE}" if difference < 0 else f" {BELOW}"


def main_table(report: Report, methods: list[str]) -> pd.DataFrame:
    """Rows (model, task) plus an average row per model; columns the base model, the
    majority-class reference and the methods; cells 'mean [95% interval] (runs, collapsed)'."""
    summary = report.summary
    columns = [m for m in [BASE, *methods] if m in set(summary["method"])]
    parts = []
    for model, block in summary.groupby("model"):
        table = block.assign(text=block.apply(_cell, axis=1)).pivot(index="task", columns="method", values="text")
        table = table.reindex(columns=columns)
        majority = block.groupby("task")[MAJORITY].first()
        table.insert(int(BASE in columns), MAJORITY, majority.map("{:.1f}".format))
        table.loc["average"] = _average_row(report, model, columns) | {MAJORITY: f"{majority.mean():.1f}"}
        parts.append(table.assign(model=model).reset_index().set_index(["model", "task"]))
    return pd.concat(parts)


def _cell(row) -> str:
    runs = f"n={row['runs']}" if row["runs"] > 1 else "1 run"
    if row["collapsed_runs"]:
        runs += f", {row['collapsed_runs']} collapsed" if row["runs"] > 1 else ", collapsed"
    if row["not_converged_runs"]:
        runs += f", {row['not_converged_runs']} not converged"
    if row["retrained_runs"]:
        runs += f", {row['retrained_runs']} retrained at half the rate"
    return f"{row['mean']:.1f} {_interval(row['ci_low'], row['ci_high'])} ({runs})" + _mark(row["p_holm"], row["difference_vs_reference"])


def _interval(low: float, high: float) -> str:
    return "[no variation]" if pd.isna(low) else f"[{low:.1f}, {high:.1f}]"


def _average_row(report: Report, model: str, columns: list[str]) -> dict:
    """The mean over tasks with its interval and mark; the base model (one run per task, no
    interval to combine) gets its mean alone."""
    averages = report.averages[report.averages["model"] == model].set_index("method")
    paired = report.paired[(report.paired["model"] == model) & (report.paired["task"] == "average")].set_index("method")
    row = {}
    for method in columns:
        if method not in averages.index:
            row[method] = f"{report.summary.query('model == @model and method == @method')['mean'].mean():.1f}"
            continue
        a = averages.loc[method]
        mark = _mark(paired.loc[method, "p_holm"], paired.loc[method, "difference"]) if method in paired.index else ""
        row[method] = f"{a['mean']:.1f} {_interval(a['ci_low'], a['ci_high'])}{mark}"
    return row


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




def _stamp() -> str:
    commit = git_state()
    return f"built from commit {commit['commit']}{' (dirty)' if commit['dirty'] else ''}"


ESTIMATOR_NOTE = (
    "Intervals: 95%, over both the seeds and the test examples (every run of a task is scored on the same test "
    "examples, so seeds and examples are crossed): variance of the mean from the crossed random-effects (ANOVA) "
    "components of the seeds x examples matrix, t quantile with Welch-Satterthwaite degrees of freedom; a task "
    "average treats tasks as independent.")


def _tests_note(paired: pd.DataFrame) -> str:
    untested = int(paired["p"].isna().sum())
    return (f"Tests against Prefix-Tuning+: two-sided t-test of the paired crossed estimate (the inverse of its "
            f"interval), Holm-adjusted over all {len(paired) - untested} tested comparisons of the paired-differences "
            f"table (per task and averaged over tasks, every model). A comparison whose per-seed differences are all "
            f"equal gets no test and no mark: equal values do not measure the between-seed variance"
            + (f" ({untested} such)." if untested else " (none here)."))


def _mdd_note(paired: pd.DataFrame) -> str:
    average = paired[paired["task"] == "average"]
    values = "; ".join(f"{r['model']}, vs {name(r['method'])}: {r['mdd']:.1f}" for _, r in average.iterrows())
    return (f"Minimum detectable difference of the task-averaged paired difference at 95% with "
            f"{statistics.POWER:.0%} power, (t_0.975 + t_0.8) x SE from the measured variance components: {values} "
            f"points. A true difference smaller than this is more likely than not to go unresolved here, so "
            f"'no significant difference' does not mean 'no difference'.")


def write_main(report: Report, methods: list[str], out_csv: Path, out_md: Path, out_tex: Path) -> None:
    stamp = _stamp()
    write_text(out_csv, f"# {stamp}\n" + report.summary.to_csv(index=False, float_format="%.4f"))
    note = (
        f"Accuracy (%) on the test split, mean over seeds [95% interval] (n = successful runs; 'k collapsed': runs "
        f"that give one answer to more than {outcomes.COLLAPSE_SHARE:.0%} of the test examples; 'k not converged': runs "
        f"that reached train.max_steps before the stopping rule held; 'k retrained at half the rate': runs that diverged at "
        f"the chosen learning rate and were trained again at half of it). The CSV's lenient_accuracy: the first line of "
        f"the answer names exactly one label, the right one. {ESTIMATOR_NOTE} "
        f"Accuracy intervals are clipped to [0, 100]. "
        f"`base`: the model without training, one run, Wilson interval. `{MAJORITY}`: accuracy of always answering "
        f"the test split's most frequent label. {ABOVE}/{BELOW}: the method is above/below Prefix-Tuning+ ({REFERENCE_METHOD}) with "
        f"Holm-adjusted p < {1 - statistics.LEVEL:.2f}. {_tests_note(report.paired)} {_mdd_note(report.paired)} "
        f"Table {stamp}.")
    table = main_table(report, methods).reset_index()
    write_text(out_md, table.to_markdown(index=False) + "\n\n" + note + "\n")
    write_text(out_tex, table.to_latex(index=False, escape=True, caption=note, label="tab:main"))


def write_paired(report: Report, out_csv: Path, out_md: Path) -> None:
    stamp = _stamp()
    paired = report.paired.assign(sentence=[sentence(row) for _, row in report.paired.iterrows()])
    write_text(out_csv, f"# {stamp}\n" + paired.to_csv(index=False, float_format="%.4f"))
    shown = paired.assign(
        comparison=[f"{name(REFERENCE_METHOD)} − {name(m)}" for m in paired["method"]],
        interval=[_interval(lo, hi) for lo, hi in zip(paired["ci_low"], paired["ci_high"])],
    )[["model", "comparison", "task", "difference", "interval", "p", "p_holm", "mdd", "paired", "verdict"]]
    headline = "\n".join(f"- {model}: {s}" for model, s, task in zip(paired["model"], paired["sentence"], paired["task"])
                         if task == "average")
    note = (
        f"Paired differences in accuracy points, {name(REFERENCE_METHOD)} minus each method, on the same seeds (same "
        f"training shots) and the same test examples; `paired`: seeds (per task) or tasks (average). {ESTIMATOR_NOTE} "
        f"Resolved at {MARGIN:g} points: the interval lies wholly above +{MARGIN:g} or below −{MARGIN:g} (a difference "
        f"larger than {MARGIN:g} points), or wholly within ±{MARGIN:g} (equivalent within {MARGIN:g} points); "
        f"otherwise not resolved. The intervals are per comparison, not adjusted for multiplicity. "
        f"{_tests_note(report.paired)} {_mdd_note(report.paired)} Table {stamp}.")
    write_text(out_md, "Averaged over tasks:\n\n" + headline + "\n\n"
               + shown.to_markdown(index=False, floatfmt=".3g") + "\n\n" + note + "\n")


def write_macro_f1(report: Report, methods: list[str], out_csv: Path, out_md: Path) -> None:
    stamp = _stamp()
    scores = report.macro_f1
    write_text(out_csv, f"# {stamp}\n" + scores.to_csv(index=False, float_format="%.4f"))
    columns = [m for m in [BASE, *methods] if m in set(scores["method"])]
    parts = []
    for model, block in scores.groupby("model"):
        cells = block.assign(text=[f"{m:.1f} ± {sd:.1f}" for m, sd in zip(block["macro_f1"], block["sd"])])
        table = cells.pivot(index="task", columns="method", values="text").reindex(columns=columns)
        majority = block.groupby("task")[MAJORITY].first()
        table.insert(int(BASE in columns), MAJORITY, majority.map("{:.1f}".format))
        table.loc["average"] = block.groupby("method")["macro_f1"].mean().reindex(columns).map("{:.1f}".format)
        table.loc["average", MAJORITY] = f"{majority.mean():.1f}"
        parts.append(table.assign(model=model).reset_index().set_index(["model", "task"]))
    note = (
        "Macro-F1 (%) on the test split: the unweighted mean over the split's labels of per-label F1, mean ± sd over "
        "seeds (the base model: one run). An answer that names no label is a miss for the gold label. "
        f"`{MAJORITY}`: always answering the most frequent label, which scores its accuracy in the main table but a "
        f"macro-F1 of 2p/(1+p)/K (p its share, K labels): a run collapsed onto one label shows here. Table {stamp}.")
    write_text(out_md, pd.concat(parts).reset_index().to_markdown(index=False) + "\n\n" + note + "\n")
