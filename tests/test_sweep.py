"""The learning-rate search: the dev argmax wins, ties go to the middle of the tied rates, the grid grows
past an edge until the choice is interior or the next rate diverges, and the sweep holds one
trained candidate at a time."""

import gc
import weakref

import pytest

from experiment import data, jobs, sweep


def ok(accuracy, losses=(1.0, 0.1)):
    return {"dev_accuracy": accuracy, "losses": list(losses)}


def test_best_is_the_dev_argmax_and_ties_go_to_the_middle_of_the_tied_rates():
    assert sweep.best({1e-3: ok(0.5), 2e-3: ok(0.7), 4e-3: ok(0.6)}) == 2e-3
    # A plateau of three: its middle, wherever it lies in the grid.
    assert sweep.best({1e-3: ok(0.7), 2e-3: ok(0.7), 4e-3: ok(0.7), 8e-3: ok(0.6)}) == 2e-3
    # Two tied rates: the one nearer the middle of the grid, so a tie at an edge is interior...
    assert sweep.best({1e-3: ok(0.5), 2e-3: ok(0.7), 4e-3: ok(0.7)}) == 2e-3
    assert sweep.best({1e-3: ok(0.7), 2e-3: ok(0.7), 4e-3: ok(0.5)}) == 2e-3
    # ...and, where both are as near, the smaller.
    assert sweep.best({1e-3: ok(0.7), 2e-3: ok(0.7)}) == 1e-3


def test_a_tie_at_the_edge_does_not_extend_the_grid():
    candidates, kept = simulate(lambda r: 0.7 if r <= 1e-3 else 0.5)  # flat below the default
    assert sorted(candidates) == [5e-4, 1e-3, 2e-3] and kept == 1e-3
    assert sweep.bracket(candidates) == "interior"


def test_a_tie_that_moves_the_choice_back_retrains_that_rate_and_checks_it_is_the_same():
    # 5e-4 and 1e-3 tie, so 5e-4 (the smaller, as near the middle) is kept; 2e-3, tried last and
    # worse, makes 1e-3 the middle of the grid, whose weights were not kept: it trains again.
    def search(curve_of_the_second_1e3_run):
        trained, curves = [], {5e-4: [[1.0, 0.1]], 1e-3: [[1.0, 0.1], curve_of_the_second_1e3_run], 2e-3: [[1.0, 0.1]]}

        def train_and_score(rate):
            trained.append(rate)
            losses = curves[rate][trained.count(rate) - 1]
            return ok({5e-4: 0.7, 1e-3: 0.7, 2e-3: 0.5}[rate], losses=losses), lambda: f"weights at {rate:g}"

        return sweep.search(train_and_score, 1e-3, [0.5, 1.0, 2.0], max_extensions=3), trained

    (candidates, kept), trained = search([1.0, 0.1])
    assert sorted(candidates) == [5e-4, 1e-3, 2e-3] and kept == "weights at 0.001"
    assert trained == [5e-4, 1e-3, 2e-3, 1e-3] and sweep.bracket(candidates) == "interior"
    with pytest.raises(RuntimeError, match="not deterministic"):
        search([1.0, 0.2])


def test_a_diverged_candidate_is_never_chosen():
    failed = {"dev_accuracy": None, "losses": None}
    blew_up = ok(0.9, losses=(1.0, 4.0))  # its loss ended above where it started
    assert sweep.best({1e-3: ok(0.2), 2e-3: failed, 4e-3: blew_up}) == 1e-3
    assert sweep.best({1e-3: failed}) is None


def simulate(accuracy_at, default=1e-3, multipliers=(0.5, 1.0, 2.0), max_extensions=3, diverges_above=None):
    """The search against a made-up dev accuracy curve."""
    def train_and_score(rate):
        if diverges_above is not None and rate > diverges_above:
            return {"dev_accuracy": 0.0, "losses": [1.0, 9.0]}, lambda: rate
        return ok(accuracy_at(rate)), lambda: rate
    return sweep.search(train_and_score, default, list(multipliers), max_extensions)


def test_an_interior_optimum_needs_no_extension():
    candidates, kept = simulate(lambda r: -abs(r - 1e-3))
    assert sorted(candidates) == [5e-4, 1e-3, 2e-3] and kept == 1e-3
    assert sweep.bracket(candidates) == "interior"


def test_the_grid_grows_past_an_edge_until_the_choice_is_interior():
    candidates, kept = simulate(lambda r: -abs(r - 1.6e-4))  # optimum two steps below the grid
    assert sorted(candidates) == [6.25e-5, 1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3]
    assert kept == 1.25e-4 and sweep.bracket(candidates) == "interior"
    assert candidates[1.25e-4]["extension"] == "lower" and candidates[1e-3]["extension"] is None


def test_a_diverged_rate_above_brackets_the_choice():
    candidates, kept = simulate(lambda r: r, diverges_above=3e-3)  # accuracy grows with the rate until it diverges
    assert sorted(candidates) == [5e-4, 1e-3, 2e-3, 4e-3] and kept == 2e-3
    assert sweep.bracket(candidates) == "diverged above"


def test_the_extensions_stop_at_their_cap_and_say_so():
    candidates, kept = simulate(lambda r: -r, max_extensions=2)  # ever smaller is ever better
    assert sorted(candidates) == [1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3] and kept == 1.25e-4
    assert sweep.bracket(candidates) == "at edge"


def test_the_sweep_holds_one_trained_candidate_at_a_time(tmp_path, monkeypatch):
    """Beside the loaded base, no earlier candidate's model is alive when the next one trains
    (the paper profile's full fine-tuning of a 7B model has room for one)."""
    task_dir = tmp_path / "topic_tiny"
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=6, test_size=8, seed=0)
    fit, alive_at_start, rates = jobs._fit, [], []
    trained: list[weakref.ref] = []

    def watched_fit(*args, **kwargs):
        gc.collect()
        alive_at_start.append(sum(ref() is not None for ref in trained))
        rates.append(args[5])  # _fit(model_spec, method, overrides, task_dir, seed, learning_rate, ...)
        result = fit(*args, **kwargs)
        trained.append(weakref.ref(result.model))
        return result

    monkeypatch.setattr(jobs, "_fit", watched_fit)
    choice = jobs.sweep_learning_rate(
        model_name="tiny", model_spec={"kind": "tiny", "architecture": "llama"}, method="full_finetune", overrides={},
        task="topic_tiny", task_dir=task_dir, seed=0, multipliers=[30.0, 100.0, 300.0], max_extensions=1,
        train_config={"max_steps": 2, "target_loss": 1e-9, "batch_size": 4}, batch_size=8, out_path=tmp_path / "chosen.json",
        run={"adapter_dir": tmp_path / "adapter", "record_path": tmp_path / "train.json", "eval_path": tmp_path / "eval.json"})
    # One fit per candidate, plus one where a tie moved the choice back to a rate trained earlier.
    again = [rate for rate in set(rates) if rates.count(rate) > 1]
    assert sorted(set(rates)) == sorted(float(r) for r in choice["candidates"]) and len(choice["candidates"]) >= 3
    assert again in ([], [choice["learning_rate"]]) and len(rates) == len(choice["candidates"]) + len(again)
    assert alive_at_start == [0] * len(alive_at_start)
    assert (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("rates, expected", [([1.0], None), ([0.5, 1.0, 2.0], 1.25e-4)])
def test_a_one_rate_grid_is_never_extended(rates, expected):
    candidates = {sweep.rounded(5e-4 * m): ok(0.5 if m == min(rates) else 0.1) for m in rates}
    assert sweep.next_rate(candidates, rates, 3) == expected


def test_a_diverged_candidate_is_not_scored_on_dev(tmp_path, monkeypatch):
    """It can never be chosen, and scoring it is the dearest dev evaluation there is."""
    from experiment import evaluation

    task_dir = tmp_path / "topic_tiny"
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=6, test_size=8, seed=0)
    scored, evaluate = [], evaluation.evaluate
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: scored.append(a[3]) or evaluate(*a, **k))
    choice = jobs.sweep_learning_rate(
        model_name="tiny", model_spec={"kind": "tiny", "architecture": "llama"}, method="full_finetune", overrides={},
        task="topic_tiny", task_dir=task_dir, seed=0, multipliers=[1.0, 10000.0], max_extensions=0,  # 1e-4 and 1.0
        train_config={"max_steps": 6, "target_loss": 1e-9, "batch_size": 4, "diverge_factor": 1.5}, batch_size=8,
        out_path=tmp_path / "chosen.json")
    wild = choice["candidates"]["1.0"]
    assert wild["dev_accuracy"] is None and wild["skipped"].startswith("diverged")
    assert sweep.loss_diverged(wild["losses"]) and len(scored) == 1  # only the stable candidate met dev


def learned_ok(accuracy, converged=True):
    return {**ok(accuracy), "converged": converged}


def test_a_rate_that_did_not_learn_its_shots_is_not_chosen_while_another_did():
    candidates = {1e-4: learned_ok(0.9, converged=False), 2e-4: learned_ok(0.6), 4e-4: learned_ok(0.5)}
    assert sweep.best(candidates) == 2e-4
    assert sweep.bracket(candidates) == "not converged below"


def test_when_no_rate_learned_the_best_stable_one_is_chosen():
    candidates = {1e-4: learned_ok(0.4, converged=False), 2e-4: learned_ok(0.6, converged=False),
                  4e-4: {"dev_accuracy": None, "losses": [1.0, 9.0], "converged": False}}
    assert sweep.best(candidates) == 2e-4
    assert sweep.bracket(candidates) == "diverged above"


def test_the_search_stops_going_lower_once_a_lower_rate_no_longer_learns():
    def train_and_score(rate):  # ever smaller is better on dev, but below 2.5e-4 the shots are not learned
        return learned_ok(-rate, converged=rate >= 2.5e-4), lambda: rate
    candidates, kept = sweep.search(train_and_score, 1e-3, [0.5, 1.0, 2.0], max_extensions=4)
    assert sorted(candidates) == [1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3] and kept == 2.5e-4
    assert sweep.bracket(candidates) == "not converged below"
