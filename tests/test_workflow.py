"""The Snakemake DAG: planning every profile, config errors, and the smoke run end to end."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import methods

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def snakemake(*args, cwd=REPO, check=True):
    result = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.mark.parametrize("profile", sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
def test_dry_run_plans_the_full_grid(profile):
    config = yaml.safe_load((REPO / "config" / f"{profile}.yaml").read_text())
    counts = job_counts(snakemake("-n", "--forceall", "--configfile", f"config/{profile}.yaml").stdout)
    n_methods = len(config.get("methods", methods.available()))
    grid = len(config["models"]) * n_methods * len(config["tasks"]) * len(config["seeds"])
    assert counts["train"] == grid
    assert counts["evaluate"] == grid
    assert counts["evaluate_base"] == len(config["models"]) * len(config["tasks"])
    assert counts["sweep_learning_rate"] == grid // len(config["seeds"])


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
        ({"train": {"steps": 0, "batch_size": 8}}, r"steps"),
        ({"method_overrides": {"lora": {"rank": 4}}}, r"unknown config key 'rank'"),
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


@pytest.fixture(scope="module")
def smoke_copy(tmp_path_factory):
    """A copy of the tracked tree with the smoke DAG run to completion in it."""
    root = tmp_path_factory.mktemp("suite")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("results/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    snakemake("--cores", "2", "--configfile", "config/smoke.yaml", cwd=root)
    return root


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
    for table in ("main.md", "main.tex"):
        assert "prefix_tuning_plus" in (smoke_copy / "results/smoke/tables" / table).read_text()


@pytest.mark.slow
def test_dropping_a_method_file_adds_it_to_the_dag(smoke_copy):
    (smoke_copy / "methods/norm_tuning.py").write_text(NEW_METHOD)
    planned = job_counts(snakemake("-n", "--configfile", "config/smoke.yaml", cwd=smoke_copy).stdout)
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    assert planned["train"] == len(config["tasks"]) * len(config["seeds"])  # only the new method's runs
    snakemake("--cores", "2", "--configfile", "config/smoke.yaml", cwd=smoke_copy)
    summary = pd.read_csv(smoke_copy / "results/smoke/tables/main.csv", comment="#")
    assert (summary["method"] == "norm_tuning").sum() == len(config["tasks"])


def test_lint_is_clean():
    result = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr
