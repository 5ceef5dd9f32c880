"""Determinism, failed runs, atomic writes, round trips and resource errors (tiny model, CPU)."""

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import methods
from experiment import adapters, data, jobs, records, sweep, tables, training

TINY = {"kind": "tiny", "architecture": "llama"}
# A target loss no run reaches: every run takes all three steps (the stopping rule is tested in test_training.py).
TRAIN = {"max_steps": 3, "target_loss": 1e-9, "batch_size": 4, "examples_per_class": 1, "max_length": 128}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("topic_tiny")
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", out, dev_size=6, test_size=8, seed=0)
    return out


def run(task_dir, out, method="prefix_tuning_plus", seed=0, lr=1e-2):
    record = jobs.train_run(model_name="tiny", model_spec=TINY, method=method, overrides={}, task="topic_tiny",
                            task_dir=task_dir, seed=seed, learning_rate=lr, train_config=TRAIN,
                            adapter_dir=out / "adapter", record_path=out / "train.json")
    evaluation = jobs.evaluate_run(model_name="tiny", model_spec=TINY, task="topic_tiny", task_dir=task_dir, split="test",
                                   batch_size=8, record_path=out / "eval.json", adapter_dir=out / "adapter",
                                   train_record=out / "train.json", method=method, seed=seed)
    return record, evaluation


@pytest.mark.parametrize("method", ["prefix_tuning_plus", "prefix_tuning"])
def test_same_seed_is_bit_identical_and_seeds_differ(task_dir, tmp_path, method):
    first, first_eval = run(task_dir, tmp_path / "a", method)
    again, again_eval = run(task_dir, tmp_path / "b", method)
    other, _ = run(task_dir, tmp_path / "c", method, seed=1)
    assert first["losses"] == again["losses"]
    weights_a, weights_b = (load_file(str(tmp_path / d / "adapter" / adapters.WEIGHTS)) for d in "ab")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert first_eval["samples"] == again_eval["samples"]
    assert first["train_examples"] != other["train_examples"]


@pytest.mark.parametrize("method", ["prefix_tuning", "full_finetune"])
def test_fitting_a_copy_of_a_loaded_model_equals_loading_it_again(task_dir, method):
    """The learning-rate sweep loads the base model once and fits a copy per candidate; that
    must train exactly as a job that loads its own (Prefix-Tuning's init draws random numbers)."""
    from experiment import models

    loaded = models.load(TINY)
    fresh = jobs._fit(TINY, method, {}, task_dir, 0, 1e-2, TRAIN, "cpu")
    copied = jobs._fit(TINY, method, {}, task_dir, 0, 1e-2, TRAIN, "cpu", loaded)
    again = jobs._fit(TINY, method, {}, task_dir, 0, 1e-2, TRAIN, "cpu", loaded)  # the first copy left `loaded` alone
    assert fresh.record["losses"] == copied.record["losses"] == again.record["losses"]
    fresh_state, copied_state = adapters.trainable_state(fresh.model), adapters.trainable_state(copied.model)
    assert all(torch.equal(fresh_state[k], copied_state[k]) for k in fresh_state)


@pytest.mark.parametrize("method", ["prefix_tuning_plus", "full_finetune"])
def test_the_sweeps_chosen_candidate_is_the_run_it_stands_for(task_dir, tmp_path, method):
    """The sweep keeps its chosen candidate as the first seed's run instead of training it again:
    adapter, train record and test record must be what rule `run` would write for that seed
    and the chosen rate (a diverging candidate is skipped, not kept)."""
    swept = tmp_path / "swept"
    choice = jobs.sweep_learning_rate(model_name="tiny", model_spec=TINY, method=method, overrides={}, task="topic_tiny",
                                      task_dir=task_dir, seed=0, multipliers=[float("inf"), 0.1, 3.0], max_extensions=0,
                                      train_config=TRAIN, batch_size=8, out_path=tmp_path / "chosen.json",
                                      run={"adapter_dir": swept / "adapter", "record_path": swept / "train.json",
                                           "eval_path": swept / "eval.json"})
    low, high, inf = sweep.initial_rates(methods.make_config(method).learning_rate, [0.1, 3.0, float("inf")])
    assert list(choice["candidates"]) == [str(low), str(high), "inf"]
    assert choice["candidates"]["inf"]["dev_accuracy"] is None and choice["learning_rate"] in (low, high)
    trained = tmp_path / "trained"
    jobs.train_run(model_name="tiny", model_spec=TINY, method=method, overrides={}, task="topic_tiny", task_dir=task_dir,
                   seed=0, learning_rate=choice["learning_rate"], train_config=TRAIN, adapter_dir=trained / "adapter",
                   record_path=trained / "train.json", eval_path=trained / "eval.json", batch_size=8)
    volatile = {"started_at", "finished_at", "eval_seconds", "train_seconds", "tokens_per_second", "provenance"}
    for name in ("train.json", "eval.json"):
        kept, again = (records.read_json(d / name) for d in (swept, trained))
        assert kept["status"] == "ok"
        assert {k: v for k, v in kept.items() if k not in volatile} == {k: v for k, v in again.items() if k not in volatile}
    kept, again = (load_file(str(d / "adapter" / adapters.WEIGHTS)) for d in (swept, trained))
    assert kept.keys() == again.keys() and all(torch.equal(kept[k], again[k]) for k in kept)


def test_scoring_in_the_training_job_equals_scoring_the_saved_adapter(task_dir, tmp_path):
    """The DAG scores each run with the model it just trained (one job); the saved adapter,
    reloaded on a fresh base model, must give the same generations and the same record."""
    jobs.train_run(model_name="tiny", model_spec=TINY, method="lora", overrides={}, task="topic_tiny", task_dir=task_dir,
                   seed=0, learning_rate=1e-2, train_config=TRAIN, adapter_dir=tmp_path / "adapter",
                   record_path=tmp_path / "train.json", eval_path=tmp_path / "in_job.json", batch_size=8)
    reloaded = jobs.evaluate_run(model_name="tiny", model_spec=TINY, task="topic_tiny", task_dir=task_dir, split="test",
                                 batch_size=8, record_path=tmp_path / "reloaded.json", adapter_dir=tmp_path / "adapter",
                                 train_record=tmp_path / "train.json", method="lora", seed=0)
    in_job = records.read_json(tmp_path / "in_job.json")
    volatile = {"started_at", "finished_at", "eval_seconds", "provenance"}
    assert in_job["status"] == "ok" and in_job["trained_on"] == "topic_tiny"
    assert {k: v for k, v in in_job.items() if k not in volatile} == {k: v for k, v in reloaded.items() if k not in volatile}


def test_the_ablation_job_is_train_run_with_its_test_score_in_the_record(task_dir, tmp_path):
    """train_and_evaluate (the feature-map ablation) trains exactly as train_run does and keeps
    the test score in its one record: the same train record plus ``test``, the variant label and
    the test split among its inputs."""
    jobs.train_run(model_name="tiny", model_spec=TINY, method="prefix_tuning_plus", overrides={"feature_map": "gelu"},
                   task="topic_tiny", task_dir=task_dir, seed=0, learning_rate=1e-2, train_config=TRAIN,
                   adapter_dir=tmp_path / "adapter", record_path=tmp_path / "train.json", eval_path=tmp_path / "eval.json",
                   batch_size=8)
    ablation = jobs.train_and_evaluate(model_name="tiny", model_spec=TINY, method="prefix_tuning_plus",
                                       overrides={"feature_map": "gelu"}, task="topic_tiny", task_dir=task_dir, seed=0,
                                       learning_rate=1e-2, train_config=TRAIN, batch_size=8,
                                       out_path=tmp_path / "variant.json", variant="gelu")
    trained, scored = records.read_json(tmp_path / "train.json"), records.read_json(tmp_path / "eval.json")
    volatile = {"started_at", "finished_at", "provenance", "inputs", "train_seconds", "tokens_per_second"}
    assert ablation["variant"] == "gelu" and set(ablation["inputs"]["data"]) == {"train.jsonl", "test.jsonl"}
    assert {k: v for k, v in ablation.items() if k not in volatile | {"test", "variant"}} == \
        {k: v for k, v in trained.items() if k not in volatile | {"weights_kept"}}  # the ablation keeps no adapter
    assert ablation["test"]["accuracy"] == scored["accuracy"] and ablation["test"]["samples"] == scored["samples"]


def test_divergence_marks_the_run_failed_and_keeps_it_out_of_tables(task_dir, tmp_path):
    failed, failed_eval = run(task_dir, tmp_path / "bad", method="lora", lr=float("inf"))
    assert failed["status"] == "failed" and "lower the learning rate" in failed["error"]
    assert failed_eval["status"] == "failed"
    assert not (tmp_path / "bad" / "adapter" / adapters.CONFIG).exists()
    _, good_eval = run(task_dir, tmp_path / "good", method="lora", lr=1e-2)
    frame = tables.load_records([tmp_path / "bad" / "eval.json", tmp_path / "good" / "eval.json"])
    row = tables.build(frame).summary.set_index("method").loc["lora"]
    assert row["runs"] == 1 and row["failed_runs"] == 1
    assert row["mean"] == pytest.approx(good_eval["accuracy"] * 100)


def test_a_run_that_diverges_is_trained_again_at_half_the_rate_and_counted(task_dir, tmp_path, monkeypatch):
    """A seed whose run diverges at the rate chosen on the sweep's seed never learned its shots:
    it is trained once more at half the rate, keeps the diverged attempt, and the table counts it."""
    real = training.train

    def diverges_above_5e_3(model, tokenizer, shots, loop, learning_rate, seed):
        result = real(model, tokenizer, shots, loop, learning_rate, seed)
        return result | {"diverged": True, "converged": False} if learning_rate > 5e-3 else result

    monkeypatch.setattr(training, "train", diverges_above_5e_3)
    record = jobs.train_run(model_name="tiny", model_spec=TINY, method="lora", overrides={}, task="topic_tiny",
                            task_dir=task_dir, seed=0, learning_rate=1e-2, train_config=TRAIN, adapter_dir=tmp_path / "a",
                            record_path=tmp_path / "a.json", eval_path=tmp_path / "a_eval.json", batch_size=8)
    assert record["learning_rate"] == 5e-3 and not record["diverged"]
    assert record["diverged_attempt"]["learning_rate"] == 1e-2
    assert len(record["diverged_attempt"]["losses"]) == record["diverged_attempt"]["steps"] == TRAIN["max_steps"]
    scored = records.read_json(tmp_path / "a_eval.json")
    assert scored["retrained_after_divergence"] is True and scored["learning_rate"] == 5e-3
    once = jobs.train_run(model_name="tiny", model_spec=TINY, method="lora", overrides={}, task="topic_tiny",
                          task_dir=task_dir, seed=1, learning_rate=5e-3, train_config=TRAIN, adapter_dir=tmp_path / "b",
                          record_path=tmp_path / "b.json", eval_path=tmp_path / "b_eval.json", batch_size=8)
    assert "diverged_attempt" not in once and once["learning_rate"] == 5e-3
    row = tables.build(tables.load_records([tmp_path / "a_eval.json", tmp_path / "b_eval.json"])).summary.set_index("method").loc["lora"]
    assert row["runs"] == 2 and row["retrained_runs"] == 1


def test_out_of_memory_says_what_to_change(task_dir, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes")

    monkeypatch.setattr(training, "answer_loss", no_memory)
    with pytest.raises(training.OutOfMemory, match=r"lower train.batch_size \(4\) or train.max_length \(128\)"):
        jobs._fit(TINY, "lora", {}, task_dir, 0, 1e-2, TRAIN, "cpu")


def test_answer_loss_equals_full_logits_loss(task_dir):
    fit = jobs._fit(TINY, "prefix_tuning_plus", {}, task_dir, 0, 1e-2, TRAIN, "cpu")
    model, tokenizer = fit.model, fit.tokenizer
    rows = data.load_split(task_dir / "train.jsonl")[:5]
    ids, labels, mask = training.collate(training.encode(tokenizer, rows, 128), tokenizer.pad_token_id)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        got = training.answer_loss(model, ids, labels, mask)
    torch.testing.assert_close(got, expected)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "record.json"
    with pytest.raises(ZeroDivisionError):
        with records.atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_tables_say_how_many_runs_each_cell_rests_on():
    def run(method, seed, right):
        samples = [{"id": f"t:{i}", "label": "a", "prediction": "a" if i < right else "b", "correct": i < right} for i in range(10)]
        return {"model": "m", "task": "t", "method": method, "seed": seed, "status": "ok", "samples": samples, "accuracy": right / 10}

    frame = pd.DataFrame([run("prefix_tuning_plus", s, r) for s, r in enumerate([5, 6, 7])]
                         + [run("lora", s, r) for s, r in enumerate([4, 5, 6])])
    report = tables.build(frame)
    table = tables.main_table(report, ["prefix_tuning_plus", "lora"])
    assert "(n=3" in table.loc[("m", "t"), "lora"]
    lora = report.summary.set_index("method").loc["lora"]
    assert lora["runs"] == 3 and lora["ci_low"] <= lora["mean"] <= lora["ci_high"]
