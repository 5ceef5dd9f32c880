"""The committed default results obey the protocol they are reported under (docs/protocol.md):
every chosen learning rate is bounded inside its grid, every kept run carries its loss curve and
says whether it learned its shots, the table counts the runs that did not, and every task is tested
on at least 100 examples. Results made any other way fail here, whatever the README says."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results/default"
MIN_TEST_EXAMPLES = 100  # docs/protocol.md, "Data and splits"


def _records(pattern: str) -> list[dict]:
    found = [json.loads(path.read_text()) for path in sorted(RESULTS.glob(pattern))]
    assert found, f"no {pattern} under {RESULTS}"
    return found


def _trained_runs() -> list[dict]:
    return _records("runs/*/*/*/seed*/train.json")


def test_every_chosen_learning_rate_is_bounded_inside_its_grid():
    unbounded = {f"{c['method']} on {c['task']}": c["bracket"] for c in _records("sweep/*/*/*/chosen.json")
                 if c["bracket"] in ("at edge", "no rate trained")}
    assert not unbounded, f"learning rates chosen at the edge of their grid: {unbounded}"


def test_every_kept_run_records_its_loss_curve_and_whether_it_learned():
    for run in _trained_runs():
        name = f"{run['method']} on {run['task']}, seed {run['seed']}"
        assert run["status"] == "ok", name
        assert len(run["losses"]) == run["steps"] > 0, name
        assert isinstance(run["converged"], bool), name
        if run["converged"]:  # the last epoch's mean answer loss met the target (experiment/training.py)
            epoch = math.ceil(len(run["train_examples"]) / run["train_config"]["batch_size"])
            assert sum(run["losses"][-epoch:]) / epoch <= run["train_config"]["target_loss"], name
        else:  # stopped by the cap, or by divergence
            assert run["steps"] == run["train_config"]["max_steps"] or run["diverged"], name


def test_the_main_table_counts_the_runs_that_did_not_learn():
    table = pd.read_csv(RESULTS / "tables/main.csv", comment="#")
    counted = table[table["task"] != "average"].groupby("method")["not_converged_runs"].sum()
    recorded = pd.Series([not r["converged"] for r in _trained_runs()],
                         index=[r["method"] for r in _trained_runs()]).groupby(level=0).sum()
    assert counted.drop("base").sort_index().to_dict() == recorded.sort_index().to_dict()


def test_every_task_is_tested_on_at_least_100_examples():
    sizes = {r["task"]: r["n"] for r in _records("runs/*/*/*/**/eval.json") if r["task"] == r.get("trained_on", r["task"])}
    small = {task: n for task, n in sizes.items() if n < MIN_TEST_EXAMPLES}
    assert not small, f"test splits under {MIN_TEST_EXAMPLES} examples: {small}"
