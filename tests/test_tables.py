"""Tables that join our numbers with other data: the paper's reported Table 1."""

import pandas as pd
import pytest

from experiment import tables
from experiment.data import EVALS_DIR

REPORTED = EVALS_DIR / "paper_reported_table1.csv"


def test_paper_comparison_puts_our_means_next_to_the_reported_numbers():
    summary = pd.DataFrame([
        {"model": "llama", "task": "intent", "method": "lora", "mean": 60.0},
        {"model": "llama", "task": "salient", "method": "lora", "mean": 40.0},
        {"model": "llama", "task": "dbpedia_14", "method": "lora", "mean": 91.0},
        {"model": "llama", "task": "not_in_paper", "method": "lora", "mean": 10.0},
    ])
    text = tables.paper_comparison(summary, REPORTED, {"llama": "LLaMA2-7B-Chat"},
                                   {"intent": "BigBench", "salient": "BigBench", "dbpedia_14": "DBpedia"})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")}
    # BigBench: the mean of our two BIG-bench task means next to the paper's 67.4 for LoRA.
    assert rows["BigBench"][2:6] == ["lora", "67.4", "50.0", "intent, salient"]
    assert rows["DBpedia"][2:5] == ["lora", "90.1", "91.0"]
    assert "not_in_paper" not in text and "reported" in text


def test_paper_comparison_without_any_matching_row_says_why():
    summary = pd.DataFrame([{"model": "smol", "task": "intent", "method": "lora", "mean": 60.0}])
    with pytest.raises(ValueError, match="paper_table1"):
        tables.paper_comparison(summary, REPORTED, {"smol": "SmolLM"}, {"intent": "BigBench"})


def test_grouped_bars_draws_a_summary_without_intervals(tmp_path):
    """The feature-map ablation's summary has sd over seeds, no interval and no majority class."""
    from experiment import figures

    summary = pd.DataFrame([{"model": "m", "task": "t", "method": "gelu", "mean": 50.0, "sd": 5.0},
                            {"model": "m", "task": "t", "method": "mlp", "mean": 40.0, "sd": float("nan")}])
    figures.grouped_bars(summary, ["gelu", "mlp"], tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_counts_runs_that_did_not_converge():
    def record(seed, converged, correct):
        samples = [{"id": f"x{i}", "label": "a" if i % 2 else "b", "prediction": "a", "correct": c} for i, c in enumerate(correct)]
        return {"model": "m", "task": "t", "method": "lora", "seed": seed, "status": "ok", "converged": converged,
                "lenient_accuracy": 0.5, "accuracy": sum(correct) / len(correct), "samples": samples}

    frame = pd.DataFrame([record(0, True, [1, 0, 1, 0]), record(1, False, [1, 1, 0, 0]), record(2, True, [0, 1, 1, 1])])
    report = tables.build(frame)
    row = report.summary.set_index("method").loc["lora"]
    assert row["not_converged_runs"] == 1 and row["lenient_accuracy"] == 50.0
    assert "1 not converged" in tables.main_table(report, ["lora"]).loc[("m", "t"), "lora"]
