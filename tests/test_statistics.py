"""The estimators against known values: simulated coverage, scipy and statsmodels on hand
examples, and the tables built from records (synthetic and the committed default ones)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests

from experiment import outcomes, statistics, tables

REPO = Path(__file__).resolve().parent.parent


def simulate(rng, tables_, tasks, seeds, examples, delta, seed_spread, example_spread):
    """Paired differences (0/1 scores of two methods) with a known mean difference ``delta``:
    each example has a difficulty shared by both methods and every seed, and an example effect
    on the difference; each (method, seed) a shift. Probabilities stay inside [0, 1], so the
    expected difference over seeds and examples is exactly ``delta``."""
    shape = (tables_, tasks)
    difficulty = rng.uniform(0.3, 0.7, shape + (1, examples))
    example_effect = rng.uniform(-example_spread, example_spread, shape + (1, examples))
    shift = lambda sign: rng.uniform(-seed_spread, seed_spread, shape + (seeds, 1)) + sign * delta / 2  # noqa: E731
    reference = rng.random(shape + (seeds, examples)) < difficulty + example_effect + shift(1)
    other = rng.random(shape + (seeds, examples)) < difficulty - example_effect + shift(-1)
    return reference.astype(float) - other


@pytest.mark.parametrize("seed_spread, example_spread", [(0.2, 0.05), (0.05, 0.1), (0.12, 0.08)],
                         ids=["seeds-dominate", "examples-dominate", "both"])
def test_interval_covers_a_known_difference(seed_spread, example_spread):
    """400 simulated tables of the default profile's shape (4 tasks, 5 seeds, 24 examples):
    the 95% interval covers the true difference, per task and averaged over tasks."""
    delta = 0.1
    d = simulate(np.random.default_rng(17), 400, 4, 5, 24, delta, seed_spread, example_spread)
    per_task = [statistics.crossed_mean(d[:, t]) for t in range(4)]
    for estimate in (per_task[0], statistics.average(per_task)):
        low, high = estimate.interval()
        assert ((low < delta) & (delta < high)).mean() >= 0.93


def test_seed_only_percentile_bootstrap_undercovers_where_this_interval_does_not():
    """The interval it replaces, on the same simulated tables where seeds dominate: so the
    coverage test above can tell a bad interval from a good one."""
    delta, rng = 0.1, np.random.default_rng(3)
    d = simulate(rng, 400, 1, 5, 24, delta, 0.2, 0.05)[:, 0]
    seed_means = d.mean(axis=2)
    resampled = np.take_along_axis(seed_means[:, None, :], rng.integers(0, 5, (400, 2000, 5)), axis=2).mean(axis=2)
    low, high = np.quantile(resampled, [0.025, 0.975], axis=1)
    assert ((low < delta) & (delta < high)).mean() < 0.93


HAND = np.array([[1, 1, 1, 0, 1, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 0, 0, -1, 0, -1]], dtype=float)


def test_crossed_variance_and_degrees_of_freedom_match_statsmodels_anova():
    seeds, examples = HAND.shape
    frame = pd.DataFrame([(s, i, HAND[s, i]) for s in range(seeds) for i in range(examples)], columns=["seed", "example", "y"])
    anova = anova_lm(smf.ols("y ~ C(seed) + C(example)", data=frame).fit())
    ms_seed, ms_example, ms_res = anova["mean_sq"]
    assert ms_seed > ms_res and ms_example > ms_res  # both components kept in this example
    variance = (ms_seed + ms_example - ms_res) / (seeds * examples)
    df = (ms_seed + ms_example - ms_res) ** 2 / (ms_seed**2 / anova["df"].iloc[0] + ms_example**2 / anova["df"].iloc[1]
                                                 + ms_res**2 / anova["df"].iloc[2])
    estimate = statistics.crossed_mean(HAND)
    assert estimate.mean == pytest.approx(HAND.mean())
    assert estimate.se**2 == pytest.approx(variance)
    assert estimate.df == pytest.approx(df)
    assert estimate.p_value() == pytest.approx(2 * stats.t.sf(abs(HAND.mean()) / np.sqrt(variance), df))
    low, high = estimate.interval()
    assert (low, high) == pytest.approx(stats.t.interval(0.95, df, loc=HAND.mean(), scale=np.sqrt(variance)))


def test_without_a_test_example_component_it_is_the_t_test_over_seeds():
    """Every example of a seed alike: the interval and p-value are scipy's one-sample t on
    the seed means ([50, 60, 70, 40, 55]: [41, 69], not the percentile bootstrap's [46, 64])."""
    seed_means = np.array([50.0, 60, 70, 40, 55])
    estimate = statistics.crossed_mean(np.repeat(seed_means[:, None], 24, axis=1))
    low, high = estimate.interval()
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 4, loc=seed_means.mean(), scale=stats.sem(seed_means)))
    assert round(low) == 41 and round(high) == 69
    assert estimate.p_value() == pytest.approx(stats.ttest_1samp(seed_means, 0).pvalue)


def test_a_constant_difference_across_seeds_has_no_p_value():
    """Examples differ, seeds do not: five equal differences say nothing of the seed variance."""
    one_seed = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=float)
    estimate = statistics.crossed_mean(np.tile(one_seed, (5, 1)))
    assert estimate.mean == pytest.approx(62.5 / 100) and np.isnan(estimate.p_value())


def test_holm_matches_statsmodels_and_the_hand_values():
    p = [0.01, 0.04, np.nan, 0.03]
    adjusted = statistics.holm(p)
    np.testing.assert_allclose(adjusted[[0, 1, 3]], multipletests([0.01, 0.04, 0.03], method="holm")[1])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, np.nan, 0.06])  # 3 x 0.01; max(2 x 0.03, ...); 1 x 0.04 -> 0.06


def test_minimum_detectable_difference_has_the_stated_power():
    """A true mean of MDD is detected at 95% in 80% of tests with that SE and df."""
    estimate = statistics.Estimate(np.array(0.0), np.array(2.0), np.array(12.0), np.array(1.0))
    mdd, critical = estimate.minimum_detectable(), stats.t.ppf(0.975, 12)
    assert stats.t.sf(critical - mdd / 2.0, 12) == pytest.approx(0.80)


@pytest.mark.parametrize("low, high, word", [(6, 9, "ahead by more"), (-12, -6, "behind by more"), (-4, 3, "equivalent"),
                                             (-12, -3, "not resolved"), (-8, 2, "not resolved")])
def test_verdict_at_five_points(low, high, word):
    assert word in statistics.verdict(low, high, 5.0)
    assert ("excludes 0" in statistics.verdict(low, high, 5.0)) == (word == "not resolved" and high < 0)


def test_collapse_majority_and_macro_f1_on_a_hand_example():
    labels = ["a", "a", "a", "b", "c"]
    assert outcomes.macro_f1(labels, ["a"] * 5) == pytest.approx((0.75 + 0 + 0) / 3)  # a: 2*3/(2*3 + 2 + 0)
    assert outcomes.macro_f1(labels, labels) == 1.0
    # A wrong answer naming no label is a miss for the gold label only.
    assert outcomes.macro_f1(labels, ["a", "a", "a", "b", "?"]) == pytest.approx((1 + 1 + 0) / 3)
    runs = _records({"lora": [["a"] * 5, ["a", "a", "a", "b", "c"]]}, labels)
    cell = outcomes.cell(runs)
    assert cell.collapsed().tolist() == [True, False]
    assert cell.majority_reference() == pytest.approx((60.0, 25.0))


def _records(answers_by_method: dict, labels: list[str], task="t") -> pd.DataFrame:
    """Evaluation records of one task: one per (method, seed), answers as given."""
    rows = []
    for method, runs in answers_by_method.items():
        for seed, answers in enumerate(runs):
            samples = [{"id": f"{task}:{i}", "label": g, "prediction": a, "correct": a == g} for i, (g, a) in enumerate(zip(labels, answers))]
            rows.append({"model": "m", "task": task, "method": method, "seed": seed, "status": "ok", "samples": samples,
                         "accuracy": np.mean([s["correct"] for s in samples])})
    return pd.DataFrame(rows)


def test_tables_mark_direction_and_leave_a_constant_difference_unmarked():
    labels = ["x", "y"] * 20
    right = lambda k: [g if i < k else "wrong" for i, g in enumerate(labels)]  # noqa: E731
    # Task t: LoRA far above Prefix-Tuning+ with spread across seeds. Task u: full fine-tuning 10
    # examples above Prefix-Tuning+ in every seed, a constant difference.
    records = pd.concat([
        _records({"prefix_tuning_plus": [right(k) for k in (4, 6, 5, 3, 7)], "lora": [right(k) for k in (36, 39, 35, 38, 37)],
                  "full_finetune": [right(k) for k in (5, 6, 5, 4, 6)]}, labels, task="t"),
        _records({"prefix_tuning_plus": [right(20)] * 5, "lora": [right(k) for k in (18, 22, 20, 21, 19)],
                  "full_finetune": [right(30)] * 5}, labels, task="u"),
    ])
    report = tables.build(records)
    paired = report.paired.set_index(["task", "method"])
    assert paired.loc[("t", "lora"), "p_holm"] < 0.05 and paired.loc[("t", "lora"), "difference"] < 0
    assert np.isnan(paired.loc[("u", "full_finetune"), "p"]) and np.isnan(paired.loc[("u", "full_finetune"), "p_holm"])
    np.testing.assert_allclose(paired["p_holm"].dropna(), multipletests(paired["p"].dropna(), method="holm")[1])
    main = tables.main_table(report, ["prefix_tuning_plus", "lora", "full_finetune"]).loc["m"]
    assert main.loc["t", "lora"].endswith(tables.ABOVE)
    assert not main.loc["u", "full_finetune"].endswith((tables.ABOVE, tables.BELOW))
    assert "(n=5)" in main.loc["u", "full_finetune"]
    assert main.loc["t", tables.MAJORITY] == "50.0"


def test_table_means_equal_the_committed_eval_records():
    paths = sorted((REPO / "results/default/runs").glob("*/*/*/**/eval.json"))
    records = tables.load_records(paths)
    summary = tables.build(records).summary.set_index(["model", "task", "method"])
    expected = records[records["status"] == "ok"].groupby(["model", "task", "method"])["accuracy"].mean() * 100
    pd.testing.assert_series_equal(summary["mean"].sort_index(), expected.sort_index(), check_names=False)
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()


def test_a_pair_scored_on_different_test_examples_is_refused():
    records = pd.concat([_records({"prefix_tuning_plus": [["a", "b"]] * 2}, ["a", "b"], task="t"),
                         _records({"lora": [["a", "b"]] * 2}, ["a", "b"], task="t").assign(
                             samples=lambda d: [[s | {"id": "other:" + s["id"]} for s in run] for run in d["samples"]])])
    with pytest.raises(ValueError, match="same test examples"):
        tables.build(records)


def test_identical_outcomes_give_no_interval_and_no_verdict():
    """Every run scoring 0 on every example (the smoke profile's tiny models): not a certainty."""
    estimate = statistics.crossed_mean(np.zeros((2, 8)))
    low, high = estimate.interval()
    assert np.isnan(low) and np.isnan(high) and np.isnan(estimate.minimum_detectable()) and np.isnan(estimate.p_value())
    assert statistics.verdict(low, high, 5.0).startswith("not resolved")
