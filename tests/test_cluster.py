"""Scaling out: the smoke DAG through the cluster-generic executor plugin, every job its own
process started by a stand-in scheduler, gives the same table as the local run. Jobs
communicate only through files."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_checkout, run_snakemake

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_smoke_dag_through_cluster_generic_executor(smoke_copy, tmp_path):
    root = copy_checkout(tmp_path / "suite")
    run_snakemake("--executor", "cluster-generic", "--cluster-generic-submit-cmd", str(REPO / "tests/submit_local.sh"),
                  "--jobs", "2", "--latency-wait", "30", "--configfile", "config/smoke.yaml", cwd=root)
    got = pd.read_csv(root / "results/smoke/tables/main.csv", comment="#")
    pd.testing.assert_frame_equal(got, pd.read_csv(smoke_copy / "results/smoke/tables/main.csv", comment="#"))


@pytest.mark.slow
def test_report_contains_tables_and_figures(smoke_copy):
    run_snakemake("all", "analyses", "--report", "report.html", "--configfile", "config/smoke.yaml", cwd=smoke_copy)
    html = (smoke_copy / "report.html").read_text(errors="replace")
    for name in ("main.csv", "main.png", "length_sweep.png"):
        assert name in html
