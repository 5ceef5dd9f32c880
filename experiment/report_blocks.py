"""Numbers that cannot drift: the README's and docs' result blocks, rewritten from the committed tables.

Every number the README and ``docs/`` state about results sits between two markers,

    <!-- generated:KIND:ARG -->
    ...
    <!-- /generated:KIND:ARG -->

and is rendered by ``RENDERERS[KIND](ARG, root)`` from the files under ``results/``, or, for
the history of a result, from a committed table at a named commit (``git show``). Prose
outside the blocks interprets; it does not restate. After the results are regenerated,

    python -m experiment.report_blocks          # rewrite every block in place
    python -m experiment.report_blocks --check  # exit 1 and name the blocks that differ

(tests/test_report_blocks.py runs the check on the committed files.)
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiment import tables

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- generated:(?P<name>\S+) -->\n(?P<body>.*?)<!-- /generated:(?P=name) -->", re.S)


def documents(root: Path = REPO) -> list[Path]:
    """The files whose blocks are kept: the README and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


# --- reading the committed tables -------------------------------------------------------

def _csv(path: Path) -> pd.DataFrame:
    """A suite CSV; its leading '# built from commit ...' line is a comment."""
    return pd.read_csv(path, comment="#")


def _stamp(path: Path) -> str:
    """'built from commit 0473199' from a table's first line (a CSV) or its last sentence (a .md)."""
    match = re.search(r"built from commit ([0-9a-f]{7})", path.read_text())
    return f"built from commit {match.group(1)}" if match else "no build stamp"


def _table_lines(text: str) -> str:
    """The first Markdown table of ``text``, as it stands."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def _source(path: Path, root: Path) -> str:
    return f"`{path.relative_to(root)}`"


def _git_show(commit: str, path: str, root: Path) -> str:
    done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise LookupError(f"cannot read {path} at commit {commit} (a shallow clone? `git fetch --unshallow`): "
                          f"{done.stderr.strip()}")
    return done.stdout


# --- renderers: KIND -> (ARG, root) -> Markdown -----------------------------------------

def headline(profile: str, root: Path) -> str:
    """Prefix-Tuning+ minus each method averaged over tasks: ``tables.sentence`` of each row of
    paired_differences.csv, with its Holm-adjusted p and minimum detectable difference."""
    path = root / "results" / profile / "tables" / "paired_differences.csv"
    paired = _csv(path)
    average = paired[paired["task"] == "average"]
    several = average["model"].nunique() > 1
    lines = [f"- {row['model'] + ': ' if several else ''}{tables.sentence(row)}; Holm-adjusted p = {row['p_holm']:.3f}, "
             f"minimum detectable difference {row['mdd']:.1f} points" for _, row in average.iterrows()]
    return "\n".join(lines) + f"\n\n({_source(path, root)}, {_stamp(path)}.)\n"


def main_table(profile: str, root: Path) -> str:
    """The main table (accuracy per task and method with intervals), as main.md has it."""
    path = root / "results" / profile / "tables" / "main.md"
    return _table_lines(path.read_text()) + f"\n({_source(path, root)}, {_stamp(path)}.)\n"


def paired_table(profile: str, root: Path) -> str:
    """Every paired difference, per task and averaged, as paired_differences.md has it."""
    path = root / "results" / profile / "tables" / "paired_differences.md"
    return _table_lines(path.read_text()) + f"\n({_source(path, root)}, {_stamp(path)}.)\n"


def macro_f1(profile: str, root: Path) -> str:
    path = root / "results" / profile / "tables" / "macro_f1.md"
    return _table_lines(path.read_text()) + f"\n({_source(path, root)}, {_stamp(path)}.)\n"


def run_counts(profile: str, root: Path) -> str:
    """Per method, over all tasks: successful runs and how many collapsed, hit the step cap, were
    retrained at half the rate after diverging, failed."""
    path = root / "results" / profile / "tables" / "main.csv"
    summary = _csv(path)
    counts = summary.groupby(["model", "method"])[["runs", "collapsed_runs", "not_converged_runs", "retrained_runs", "failed_runs"]].sum()
    return counts.reset_index().to_markdown(index=False) + f"\n\n({_source(path, root)}, {_stamp(path)}.)\n"


def whole_file(relative: str):
    """A renderer that copies a generated Markdown file whole (the cost tables, the ablation table)."""
    def render(profile: str, root: Path) -> str:
        path = root / "results" / profile / relative
        return path.read_text().rstrip("\n") + f"\n\n({_source(path, root)}.)\n"
    render.__doc__ = f"results/<profile>/{relative}, whole."
    return render


def length_sweep(profile: str, root: Path) -> str:
    """Accuracy (%) mean ± sd over seeds per method and context length, and Prefix-Tuning's
    attention share on its prefix (mean over layers, then seeds)."""
    folder = root / "results" / profile / "analyses"
    accuracy = pd.read_csv(folder / "length_sweep_accuracy.csv")
    accuracy["accuracy"] *= 100
    stats = accuracy.groupby(["method", "context_tokens"])["accuracy"].agg(["mean", "std", "count"])
    cells = stats.apply(lambda s: f"{s['mean']:.1f} ± {s['std']:.1f} ({s['count']:.0f})", axis=1).unstack("context_tokens")
    cells.columns = [f"{c} tokens" for c in cells.columns]
    text = "Accuracy (%), mean ± sd over seeds (seeds):\n\n" + cells.to_markdown() + "\n"
    alpha = pd.read_csv(folder / "length_sweep_alpha.csv")
    if not alpha.empty:
        share = alpha.groupby(["method", "context_tokens", "seed"])["share"].mean().groupby(["method", "context_tokens"]).mean()
        shares = share.unstack("context_tokens")
        shares.columns = [f"{c} tokens" for c in shares.columns]
        text += ("\nAttention share on the prefix (alpha), mean over layers and seeds:\n\n"
                 + shares.to_markdown(floatfmt=".2f") + "\n")
    return text + f"\n(`{(folder / 'length_sweep_accuracy.csv').relative_to(root)}`, `length_sweep_alpha.csv`.)\n"


def iid_ood(profile: str, root: Path) -> str:
    """Accuracy (%) in and out of distribution per method, mean over seeds."""
    path = root / "results" / profile / "analyses" / "iid_ood.csv"
    points = pd.read_csv(path)
    means = points.groupby("method").agg(iid=("iid", "mean"), ood=("ood", "mean"), runs=("iid", "count"))
    means[["iid", "ood"]] = means[["iid", "ood"]].map("{:.1f}".format)  # runs stays an integer
    tasks = f"in distribution {points['iid_task'].iloc[0]}, out of distribution {points['ood_task'].iloc[0]}"
    return (f"Accuracy (%), mean over runs ({tasks}):\n\n" + means.to_markdown(disable_numparse=True)
            + f"\n\n({_source(path, root)}.)\n")


def expressiveness(profile: str, root: Path) -> str:
    """Effective rank 1/sum(lambda^2) of each method's normalised spectrum, per layer."""
    path = root / "results" / profile / "analyses" / "expressiveness.csv"
    spectra = pd.read_csv(path)
    rank = spectra.groupby(["method", "layer"])["eigenvalue"].apply(lambda v: 1 / (v ** 2).sum()).unstack("layer")
    rank.columns = [f"layer {c}" for c in rank.columns]
    return ("Effective rank 1/Σλ² of the normalised covariance spectrum of the added vectors:\n\n"
            + rank.to_markdown(floatfmt=".1f") + f"\n\n({_source(path, root)}.)\n")


# Rules with a benchmark file that serve `snakemake analyses` (the cost benchmark included);
# every other one serves the main grid (`snakemake all`, Table 1).
ANALYSIS_RULES = {"length_sweep": "analyses", "feature_map": "analyses", "iid_ood": "analyses", "cost": "cost"}
PART_ORDER = {"main grid": 0, "analyses": 1, "cost": 2}


def _job_seconds(profile: str, root: Path) -> tuple[pd.DataFrame, Path]:
    """One row per job with a benchmark file (one .tsv per job): its part, rule and seconds."""
    folder = root / "results" / profile / "benchmarks"
    rows = []
    for tsv in sorted(folder.rglob("*.tsv")):
        rule = tsv.relative_to(folder).parts[0].removesuffix(".tsv")
        rows.append({"part": ANALYSIS_RULES.get(rule, "main grid"), "rule": rule,
                     "seconds": float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])})
    return pd.DataFrame(rows), folder


def _per(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.groupby(keys)["seconds"].agg(jobs="count", job_seconds="sum").reset_index()
    out["job_seconds"] = out["job_seconds"].round().astype(int)
    return out


def budget(profile: str, root: Path) -> str:
    """Job-seconds per rule from Snakemake's benchmark files, with a subtotal per part of the DAG
    (main grid, analyses, cost)."""
    frame, folder = _job_seconds(profile, root)
    parts = _per(frame, ["part"]).assign(rule="(all)")
    total = _per(frame.assign(part="total", rule="(all)"), ["part", "rule"])
    order = {**PART_ORDER, "total": len(PART_ORDER), "(all)": "~"}  # "~" sorts a subtotal last
    jobs = pd.concat([_per(frame, ["part", "rule"]), parts, total]).sort_values(
        ["part", "rule"], key=lambda c: c.map(order).fillna(c))
    return (jobs[["part", "rule", "jobs", "job_seconds"]].to_markdown(index=False)
            + f"\n\n(`{folder.relative_to(root)}/**/*.tsv`, column `s`.)\n")


def budget_parts(profile: str, root: Path) -> str:
    """The budget's subtotals only: job-seconds per part of the DAG (the README's short form)."""
    frame, folder = _job_seconds(profile, root)
    parts = _per(frame, ["part"]).sort_values("part", key=lambda c: c.map(PART_ORDER))
    return (parts.to_markdown(index=False)
            + f"\n\n(`{folder.relative_to(root)}/**/*.tsv`, column `s`; per rule: [docs/protocol.md](docs/protocol.md#budget).)\n")


def _elapsed(text: str) -> float:
    """Seconds from GNU time's "h:mm:ss" or "m:ss.ss"."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def wall_clock(profile: str, root: Path) -> str:
    """Whole commands as a reader runs them, each timed with GNU ``/usr/bin/time -v`` into one file
    under ``benchmarks/wall_clock/`` (what the per-job files cannot give: the wall clock of a run
    with its jobs in parallel). Files are read in name order."""
    folder = root / "results" / profile / "benchmarks" / "wall_clock"
    rows = []
    for path in sorted(folder.glob("*.txt")):
        fields = dict(line.strip().split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
        try:
            rows.append({"command": f"`{fields['Command being timed'].strip(chr(34))}`",
                         "wall clock": _duration(_elapsed(fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"])),
                         "CPU": fields["Percent of CPU this job got"],
                         "exit status": fields["Exit status"]})
        except KeyError as missing:
            raise ValueError(f"{path}: no {missing} line; expected the output of `/usr/bin/time -v -o {path.name}`") from None
    if not rows:
        raise FileNotFoundError(f"{folder}: no /usr/bin/time -v outputs (*.txt)")
    return (pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
            + f"\n\n(`{folder.relative_to(root)}/*.txt`, GNU time's output.)\n")


def sweep(profile: str, root: Path) -> str:
    """Per (method, task): the learning rates tried, dev accuracy (%) at each, and the one chosen."""
    folder = root / "results" / profile / "sweep"
    rows = []
    for path in sorted(folder.rglob("chosen.json")):
        choice = json.loads(path.read_text())
        tried = ", ".join(f"{float(lr):g}: {_dev(c)}" for lr, c in sorted(choice["candidates"].items(), key=lambda kv: float(kv[0])))
        rows.append({"model": path.relative_to(folder).parts[0], "method": choice["method"], "task": choice["task"],
                     "chosen": f"{choice['learning_rate']:g}", "dev accuracy (%) per rate": tried})
    return (pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
            + f"\n\n(`{folder.relative_to(root)}/**/chosen.json`.)\n")


def _dev(candidate: dict) -> str:
    accuracy = candidate.get("dev_accuracy")
    return "diverged" if accuracy is None else f"{accuracy * 100:.1f}"


def _history_average_rows(commit: str, path: str, task_column: int, root: Path) -> str:
    """A committed Markdown table at ``commit``: its header and the rows whose task is ``average``."""
    lines = _table_lines(_git_show(commit, path, root)).splitlines()
    rows = [line for line in lines[2:] if line.split("|")[task_column].strip() == "average"]
    return "\n".join(lines[:2] + rows) + f"\n\n(`{path}` at {commit}.)\n"


def history_main(commit: str, root: Path) -> str:
    """The default profile's average row as committed at ``commit``."""
    return _history_average_rows(commit, "results/default/tables/main.md", 2, root)


def history_paired(commit: str, root: Path) -> str:
    """The default profile's averaged paired differences (the headline) as committed at ``commit``."""
    return _history_average_rows(commit, "results/default/tables/paired_differences.md", 3, root)


def history_cost(commit: str, root: Path) -> str:
    """Prefix-Tuning+'s and LoRA's paired cost ratios (wall clock) as committed at ``commit``."""
    path = "results/default/cost/cost.md"
    text = _git_show(commit, path, root)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method") and "clock" in line)
    rows = [line for line in lines[start + 2:] if line.startswith("|")
            and [c.strip() for c in line.split("|")[1:3]] in (["lora", "wall"], ["prefix_tuning_plus", "wall"])]
    return "\n".join(lines[start:start + 2] + rows) + f"\n\n(`{path}` at {commit}.)\n"


RENDERERS = {
    "headline": headline,
    "main": main_table,
    "paired": paired_table,
    "macro_f1": macro_f1,
    "runs": run_counts,
    "cost": whole_file("cost/cost.md"),
    "cost_before": whole_file("cost/before_01dabf6.md"),
    "feature_map": whole_file("tables/feature_map.md"),
    "length_sweep": length_sweep,
    "iid_ood": iid_ood,
    "expressiveness": expressiveness,
    "budget": budget,
    "budget_parts": budget_parts,
    "wall_clock": wall_clock,
    "sweep": sweep,
    "history_main": history_main,
    "history_paired": history_paired,
    "history_cost": history_cost,
}


# --- rewriting and checking --------------------------------------------------------------

def render(name: str, root: Path = REPO) -> str:
    kind, _, arg = name.partition(":")
    if kind not in RENDERERS:
        raise KeyError(f"unknown generated block {name!r}; kinds: {', '.join(RENDERERS)} (experiment/report_blocks.py)")
    return RENDERERS[kind](arg, root)


def rewrite(text: str, root: Path = REPO) -> str:
    """``text`` with every block's body rendered afresh from the tables under ``root``."""
    return BLOCK.sub(lambda m: f"<!-- generated:{m['name']} -->\n{render(m['name'], root)}<!-- /generated:{m['name']} -->",
                     text)


def stale(path: Path, root: Path = REPO) -> list[str]:
    """Names of the blocks in ``path`` whose text differs from what the tables give."""
    text = Path(path).read_text()
    return [m["name"] for m in BLOCK.finditer(text) if m["body"] != render(m["name"], root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs from the tables")
    args = parser.parse_args(argv)
    out = io.StringIO()
    differing = 0
    for path in documents():
        if args.check:
            names = stale(path)
            differing += len(names)
            out.writelines(f"{path.relative_to(REPO)}: block {n} differs from the committed tables\n" for n in names)
        else:
            text = path.read_text()
            new = rewrite(text)
            if new != text:
                path.write_text(new)
                out.write(f"rewrote {path.relative_to(REPO)}\n")
    if args.check and differing:
        out.write("run `python -m experiment.report_blocks` to rewrite them\n")
    sys.stdout.write(out.getvalue())
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
