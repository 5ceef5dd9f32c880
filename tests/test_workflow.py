"""The Snakemake DAG: planning every profile, config errors, and the smoke run end to end."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_checkout
from conftest import run_snakemake as snakemake

import methods

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.mark.parametrize("profile", sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
def test_dry_run_plans_the_full_grid(profile):
    config = yaml.safe_load((REPO / "config" / f"{profile}.yaml").read_text())
    counts = job_counts(snakemake("-n", "--forceall", "--configfile", f"config/{profile}.yaml").stdout)
    n_methods = len(config.get("methods", methods.available()))
    grid = len(config["models"]) * n_methods * len(config["tasks"]) * len(config["seeds"])
    assert counts["run"] == grid - grid // len(config["seeds"])  # the sweep yields the first seed's run
    assert "evaluate" not in counts and "train" not in counts  # one job per run trains and scores
    assert counts["evaluate_base"] == len(config["models"]) * len(config["tasks"])
    assert counts["sweep_learning_rate"] == grid // len(config["seeds"])


@pytest.mark.parametrize("profile", sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
def test_dry_run_plans_every_analysis(profile):
    config = yaml.safe_load((REPO / "config" / f"{profile}.yaml").read_text())
    counts = job_counts(snakemake("-n", "--forceall", "analyses", "--configfile", f"config/{profile}.yaml").stdout)
    analyses = config.get("analyses", {})
    for name in analyses:
        assert counts[name] == 1, name
    if "feature_map" in analyses:
        fm = analyses["feature_map"]
        assert counts["feature_map_run"] == len(config["models"]) * len(fm["tasks"]) * len(fm["variants"]) * len(fm["seeds"])
    if "iid_ood" in analyses:
        # Methods whose weights the profile keeps (full fine-tuning's only with keep_full_finetune_weights).
        kept = [m for m in config.get("methods", methods.available()) if m != "full_finetune" or config.get("keep_full_finetune_weights")]
        assert counts["ood_evaluate"] == len(kept) * len(analyses["iid_ood"]["seeds"])


def write_config(tmp_path, **changes):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config.update(changes)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"methods": ["lora", "dora"]}, r"config key 'methods': unknown \['dora'\]; allowed: .*prefix_tuning_plus"),
        ({"tasks": ["sentiment_tiny", "mnli"]}, r"config key 'tasks': unknown \['mnli'\]"),
        ({"seeds": "zero"}, r"seeds"),
        ({"train": {"max_steps": 0, "target_loss": 0.05, "batch_size": 8}}, r"max_steps"),
        ({"method_overrides": {"lora": {"rank": 4}}}, r"unknown config key 'rank'"),
        ({"analyses": {"feature_map": {"tasks": ["sentiment_tiny"], "seeds": [0], "variants": {"x": {"phi": "elu"}}}}},
         r"unknown config key 'phi'"),
        ({"analyses": {"iid_ood": {"train_task": "sentiment_tiny", "ood_task": "mnli", "seeds": [0]}}},
         r"config key 'analyses.iid_ood.ood_task': unknown \['mnli'\]"),
        ({"eval": {"batch_size": 8, "batch_size_by_task": {"mnli": 1}}}, r"config key 'eval.batch_size_by_task': unknown \['mnli'\]"),
        ({"eval": {"batch_size": 8, "batch_size_by_task": {"topic_tiny": 0}}}, r"batch_size_by_task"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, changes, message):
    result = snakemake("-n", "--configfile", write_config(tmp_path, **changes), check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert "Job stats" not in result.stdout


NEW_METHOD = '''"""Norm tuning: only the RMSNorm scales train (a method added by dropping in one file)."""
from dataclasses import dataclass


@dataclass
class Config:
    learning_rate: float = 1e-2


def apply(model, config):
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if "norm" in name:
            param.requires_grad_(True)
    return model
'''


@pytest.mark.slow
def test_smoke_dag_end_to_end(smoke_copy):
    summary = pd.read_csv(smoke_copy / "results/smoke/tables/main.csv", comment="#")
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    expected = {(t, m) for t in config["tasks"] for m in methods.available() + ["base"]}
    assert set(zip(summary["task"], summary["method"])) == expected
    assert len(summary) == len(expected)  # one row per (task, method)
    assert summary["mean"].between(0, 100).all()
    trained = summary[summary["method"] != "base"]
    assert (trained["runs"] == len(config["seeds"])).all()
    figure = smoke_copy / "results/smoke/figures/main.png"
    assert figure.read_bytes()[:8] == PNG_MAGIC
    for table in ("main.md", "main.tex", "macro_f1.md"):
        assert "prefix_tuning_plus" in (smoke_copy / "results/smoke/tables" / table).read_text()
    # The headline: Prefix-Tuning+ minus every other trained method, per task and averaged.
    paired = pd.read_csv(smoke_copy / "results/smoke/tables/paired_differences.csv", comment="#")
    others = set(methods.available()) - {"prefix_tuning_plus"}
    assert set(zip(paired["task"], paired["method"])) == {(t, m) for t in config["tasks"] + ["average"] for m in others}
    # An interval holds its difference; a comparison whose every outcome is identical (the tiny
    # random models can score 0 everywhere) has none, and is never called resolved.
    has = paired["ci_low"].notna()
    assert ((paired["ci_low"] <= paired["difference"]) & (paired["difference"] <= paired["ci_high"]))[has].all()
    assert paired.loc[~has, "ci_high"].isna().all()
    assert not paired.loc[~has, "verdict"].str.startswith("resolved").any()
    assert "Prefix-Tuning+ − LoRA:" in (smoke_copy / "results/smoke/tables/paired_differences.md").read_text()
    assert (smoke_copy / "results/smoke/figures/paired_differences.png").read_bytes()[:8] == PNG_MAGIC
    # Each evaluation ran at its task's batch size (eval.batch_size_by_task, else eval.batch_size).
    evaluated_records = [json.loads(r.read_text()) for r in smoke_copy.glob("results/smoke/runs/*/*/*/**/eval.json")]
    assert set(config["tasks"]) <= {r["task"] for r in evaluated_records}  # and the IID/OOD base point
    for evaluated in evaluated_records:
        want = config["eval"].get("batch_size_by_task", {}).get(evaluated["task"], config["eval"]["batch_size"])
        assert evaluated["batch_size"] == want, (evaluated["method"], evaluated["task"], evaluated["seed"])


@pytest.mark.slow
def test_length_sweep_analysis(smoke_copy):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["analyses"]["length_sweep"]
    accuracy = pd.read_csv(smoke_copy / "results/smoke/analyses/length_sweep_accuracy.csv")
    assert len(accuracy) == len(config["methods"]) * len(config["seeds"]) * len(config["lengths"])
    alpha = pd.read_csv(smoke_copy / "results/smoke/analyses/length_sweep_alpha.csv")
    assert set(alpha["method"]) == {"prefix_tuning"}
    # The prefix competes with the input in one softmax: more context, less attention on the prefix.
    share = alpha.groupby("context_tokens")["share"].mean()
    assert share.iloc[-1] < share.iloc[0]
    assert (smoke_copy / "results/smoke/figures/length_sweep.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_feature_map_and_iid_ood_analyses(smoke_copy):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())["analyses"]
    runs = pd.read_csv(smoke_copy / "results/smoke/analyses/feature_map.csv")
    fm = config["feature_map"]
    variants = set(fm["variants"]) | {"default (main grid)"}
    assert set(runs["variant"]) == variants
    assert len(runs) == len(variants) * len(fm["tasks"]) * len(fm["seeds"])
    params = runs.groupby("variant")["trainable_parameters"].first()
    assert params["mlp"] > params["gelu"] == params["post_rope"] == params["default (main grid)"]
    assert "gelu" in (smoke_copy / "results/smoke/tables/feature_map.md").read_text()
    points = pd.read_csv(smoke_copy / "results/smoke/analyses/iid_ood.csv")
    assert set(points["ood_task"]) == {config["iid_ood"]["ood_task"]}
    assert set(points["method"]) == set(methods.available()) | {"base"}
    assert points[["iid", "ood"]].stack().between(0, 100).all()
    for name in ("feature_map", "iid_ood"):
        assert (smoke_copy / f"results/smoke/figures/{name}.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_dropping_a_method_file_adds_it_to_the_dag(smoke_copy, tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(smoke_copy, copy, symlinks=True)
    (copy / "methods/norm_tuning.py").write_text(NEW_METHOD)
    planned = job_counts(snakemake("-n", "--configfile", "config/smoke.yaml", cwd=copy).stdout)
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    # Only the new method's runs: one sweep per task (which yields the first seed's run), then the other seeds.
    assert planned["sweep_learning_rate"] == len(config["tasks"])
    assert planned["run"] == len(config["tasks"]) * (len(config["seeds"]) - 1)
    snakemake("--cores", "2", "--configfile", "config/smoke.yaml", cwd=copy)
    summary = pd.read_csv(copy / "results/smoke/tables/main.csv", comment="#")
    assert (summary["method"] == "norm_tuning").sum() == len(config["tasks"])


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_table(smoke_copy, tmp_path):
    """Kill the DAG while it trains; re-running does only the missing jobs and ends with the
    same table as the uninterrupted run (CPU runs are deterministic)."""
    copy = tmp_path / "suite"
    shutil.copytree(smoke_copy, copy, symlinks=True, ignore=shutil.ignore_patterns("results", ".snakemake"))
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/smoke.yaml"]
    process = subprocess.Popen(command, cwd=copy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    total = len(methods.available()) * len(config["tasks"]) * len(config["seeds"])
    deadline = time.time() + 300
    while len(list(copy.glob("results/smoke/runs/*/*/*/seed*/train.json"))) < 3 and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(copy.glob("results/smoke/runs/*/*/*/seed*/train.json")))
    assert 3 <= done < total, "the kill should land while training is under way"
    snakemake("--unlock", "--configfile", "config/smoke.yaml", cwd=copy)  # a killed Snakemake leaves its lock
    resumed = snakemake("--cores", "2", "--configfile", "config/smoke.yaml", "--rerun-incomplete", cwd=copy)
    # Each missing run comes from one job (rule run, or the sweep for the first seed); with one
    # core, at most the job that was running when killed is redone besides those.
    counts = job_counts(resumed.stdout + resumed.stderr)
    rerun = counts.get("run", 0) + counts.get("sweep_learning_rate", 0)
    assert total - done <= rerun <= total - done + 1
    expected = pd.read_csv(smoke_copy / "results/smoke/tables/main.csv", comment="#")
    pd.testing.assert_frame_equal(pd.read_csv(copy / "results/smoke/tables/main.csv", comment="#"), expected)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


@pytest.mark.slow
def test_cost_benchmark_runs_in_the_smoke_dag(smoke_copy):
    """A functional check of `snakemake cost` (its timings are a benchmark, not a test)."""
    table = pd.read_csv(smoke_copy / "results/smoke/cost/cost.csv", comment="#")
    assert set(table["method"]) == {"base (forward+backward)", "base (forward only)", *methods.available()}
    assert (table["peak_memory_mib"] > 0).all()
    resolution = pd.read_csv(smoke_copy / "results/smoke/cost/resolution.csv")
    assert set(zip(resolution["metric"], resolution["clock"])) == {
        (m, c) for m in ("train_step_s", "decode_s_per_token") for c in ("wall", "cpu")}
    assert all(len(str(levels).split()) == 2 for levels in resolution["by_process"])  # processes: 2
    assert "A/A ratio" in (smoke_copy / "results/smoke/cost/cost.md").read_text()
    assert (smoke_copy / "results/smoke/figures/cost_pareto.png").read_bytes()[:8] == PNG_MAGIC


def test_a_drop_in_without_the_contract_stops_before_planning_and_says_what_is_missing(tmp_path):
    copy = tmp_path / "suite"
    copy.mkdir()
    copy_checkout(copy)
    (copy / "methods/half_done.py").write_text(NEW_METHOD.replace("    learning_rate: float = 1e-2\n", "    scale: float = 1.0\n"))
    result = snakemake("-n", "--configfile", "config/smoke.yaml", cwd=copy, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "methods/half_done.py does not meet the method contract: `Config` has no field `learning_rate`" in output
    assert "InputFunctionException" not in output and "Job stats" not in result.stdout
