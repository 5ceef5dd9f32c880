"""The cost benchmark's measuring instruments (not its timings, which are benchmarks)."""

import re
import subprocess
import sys

import pytest
import torch

from experiment import cost, models

SPEC = {"kind": "tiny", "architecture": "llama"}


def test_subjects_share_the_base_weights_and_training_leaves_them_unchanged():
    base = cost.build(SPEC, "cpu")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    subjects = [cost.Subject(name, base, "cpu") for name in (cost.BASE_TRAIN, "full_finetune", "lora", "prefix_tuning_plus")]
    ids = torch.randint(10, base.config.vocab_size, (2, 8))
    for subject in subjects:
        subject.train_step(ids)
    frozen = subjects[0].model.model.layers[0].mlp.up_proj.weight
    full = subjects[1].model.model.layers[0].mlp.up_proj.weight
    assert full.data_ptr() == frozen.data_ptr() == base.model.layers[0].mlp.up_proj.weight.data_ptr()  # one copy in memory
    assert full.requires_grad and not frozen.requires_grad  # flags are per subject
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), key  # learning rate 0: the optimizer's work, no change
    tied = subjects[1].model
    assert tied.lm_head.weight is tied.model.embed_tokens.weight or not base.config.tie_word_embeddings


def test_peak_memory_is_the_childs_own_not_its_parents():
    """ru_maxrss survives exec on Linux; VmHWM does not. A child of a process holding ~400 MiB
    must report far less than that."""
    ballast = torch.ones(100 * 2**20)  # 400 MiB resident in this process
    child = subprocess.run([sys.executable, "-c", "from experiment import cost; print(cost.peak_resident_mib())"],
                           capture_output=True, text=True, check=True, cwd=models.__file__.rsplit("/experiment/", 1)[0])
    assert float(child.stdout.strip()) < 350, child.stdout
    assert ballast.sum() > 0


def test_paired_ratio_cancels_drift_and_ignores_one_bad_round():
    """A method 10% slower than its reference in every round, while the machine drifts 3x over
    the rounds and one round is hit by a burst, reads 1.10 with an interval around it."""
    reference = [1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 2.0]
    values = [1.1 * r for r in reference]
    values[3] *= 2  # a burst of noise in one round
    median, low, high = cost.paired_ratio(values, reference)
    assert median == pytest.approx(1.1)
    assert low <= median <= high and low == pytest.approx(1.1)


def test_the_interval_spans_processes_that_disagree():
    """Three processes whose levels differ (1.00, 1.05, 1.10 in every round): rounds alone would
    give a tight interval around 1.05; drawing processes first spans all three levels."""
    reference = [[1.0] * 20] * 3
    values = [[level] * 20 for level in (1.00, 1.05, 1.10)]
    median, low, high = cost.paired_ratio(values, reference)
    assert median == pytest.approx(1.05)
    assert low == pytest.approx(1.00) and high == pytest.approx(1.10)
    assert cost.paired_ratio(sum(values, []), sum(reference, [])) == pytest.approx((1.05, 1.05, 1.05))


def test_interleaved_rounds_alternate_direction_and_time_the_reference_at_both_ends():
    seen = []

    class Named:
        def __init__(self, name):
            self.name = name

    a, b, c = Named("a"), Named("b"), Named("c")
    found, twin = cost.interleaved([a, b, c], lambda s: seen.append(s.name) or {"step": {"wall": float(len(seen))}}, 2)
    assert seen == ["a", "b", "c", "a", "a", "c", "b", "a"]
    assert found["a"]["step"]["wall"] == [1.0, 8.0] and twin["step"]["wall"] == [4.0, 5.0]
    assert found["b"]["step"]["wall"] == [2.0, 7.0]


def test_measure_reports_paired_ratios_per_clock_and_the_resolution():
    rows, resolution = cost.measure(SPEC, ["lora", "prefix_tuning", "prefix_tuning_plus"], batch_size=2, seq_len=8, steps=1,
                                    repeats=3, decode_steps=2, processes=2)
    by_name = {r["method"]: r for r in rows}
    assert set(by_name) == {cost.BASE_TRAIN, cost.BASE_FORWARD, "lora", "prefix_tuning", "prefix_tuning_plus"}
    for suffix in ("", "_cpu"):
        assert by_name["lora"][f"train_step_s_vs_lora{suffix}"] == by_name["lora"][f"decode_s_per_token_vs_lora{suffix}"] == 1.0
        assert by_name[cost.BASE_FORWARD][f"decode_s_per_token_vs_base{suffix}"] == 1.0
        for name in ("lora", "prefix_tuning", "prefix_tuning_plus"):
            row = by_name[name]
            assert row["decode_s_per_token"] > 0 and row["prefill_s"] > 0 and row["train_step_s"] > 0
            for key in (f"decode_s_per_token_vs_base{suffix}", f"train_step_s_vs_base{suffix}"):
                assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"]
                assert len(row[f"{key}_by_process"].split()) == 2
    assert by_name[cost.BASE_FORWARD]["train_step_s"] != by_name[cost.BASE_FORWARD]["train_step_s"]  # never trained: NaN
    assert {(r["metric"], r["clock"]) for r in resolution} == {(m, c) for m in ("train_step_s", "decode_s_per_token") for c in ("wall", "cpu")}
    assert all(r["low"] <= r["median"] <= r["high"] and len(r["by_process"].split()) == 2 for r in resolution)
    for row in rows:
        row["peak_memory_mib"] = 1.0
    text = cost.markdown(rows, resolution, "tiny")
    assert re.search(r"\| prefix_tuning_plus +\| cpu ", text) and "A/A ratio" in text and "decode / base, each process" in text


@pytest.mark.parametrize("name", [cost.BASE_FORWARD, "lora", "prefix_tuning", "prefix_tuning_plus", "full_finetune"])
def test_a_timed_decode_step_is_the_prompts_next_token_through_its_cache(name):
    """What the decode phase times is real cached decoding: the step's logits equal the whole
    sequence's at that token (for Prefix-Tuning too, whose peft forward would swap the cache for
    its bare prefix), and the cache is back to the prompt's length afterwards."""
    subject = cost.Subject(name, cost.build(SPEC, "cpu"), "cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in subject.model.parameters():
            if p.requires_grad:  # untrained adapters (zero M, zero LoRA B) would hide a bypassed method
                p.add_(torch.randn(p.shape, generator=generator) * 0.3)
    prompt = torch.randint(10, 200, (2, 6), generator=generator)
    subject.start_decoding(prompt)
    length = subject.cache.get_seq_length()
    logits = subject.decode_step()
    assert subject.cache.get_seq_length() == length
    with torch.no_grad():
        whole = subject.model(input_ids=torch.cat([prompt, subject.next_token], 1)).logits[:, -1:]
        unadapted = cost.Subject(cost.BASE_FORWARD, cost.build(SPEC, "cpu"), "cpu").model(
            input_ids=torch.cat([prompt, subject.next_token], 1)).logits[:, -1:]
    torch.testing.assert_close(logits, whole, rtol=1e-4, atol=1e-4)
    if name != cost.BASE_FORWARD:
        assert (logits - unadapted).abs().max() > 1e-3
