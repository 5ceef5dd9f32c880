"""What each method costs: trainable parameters, adapter size, training speed and memory,
inference latency, side by side in one process.

The machines are noisy, so methods are measured in interleaved rounds (A, B, C, then C, B, A,
...), and every ratio (to LoRA, to the frozen base model) is paired: the median over rounds of
a method's time divided by the reference's time in the same round, with a 95% bootstrap
interval, so that slow drifts of the machine cancel. Two reference rows bound what any adapter
can cost:

* ``base (forward+backward)``: the frozen base model with gradients flowing to its input, the
  floor every method that trains something inside the network pays;
* ``base (forward only)``: inference.

Every subject reads the same frozen weight tensors (its own modules, shared parameter storage),
so that where the weights happen to lie in memory cannot favour one method: decoding on a CPU is
bound by memory bandwidth, and two separately loaded copies of the same model differed by up to
8% in decode speed here. The optimizers run with learning rate 0: AdamW does all of its work, and
the shared weights stay the base model's. Each absolute time is the fastest of the repeats,
since noise on a shared machine only ever adds time (the reasoning of ``timeit``).

Decode latency is clocked inside ``generate``, at each new token (a logits processor), so it is
the time of the cached one-token steps alone; subtracting a separately timed prefill from a
whole ``generate`` call, as the first version did, left noise larger than the 3% target. To show
the resolution, the base model's decode is measured twice in every round and the same paired
statistic is reported for it against itself (``resolution``): a ratio whose interval excludes 1
by more than that is a real difference.

Peak memory on CPU is the peak resident set size (``VmHWM`` in ``/proc/self/status``) of a fresh
process that loads the model, applies the method and trains a few steps; one process per method,
because a process's peak cannot be attributed to one of several models living in it. Not
``ru_maxrss``: Linux carries it across ``exec``, so a child started by a big parent reports the
parent's peak. On CUDA it is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

import methods
from experiment import adapters, models, training

SHAPES_DIR = Path(__file__).resolve().parent.parent / "config" / "shapes"
BASE_TRAIN, BASE_FORWARD = "base (forward+backward)", "base (forward only)"


def build(model_spec: dict, device: str, dtype: torch.dtype = torch.float32, shrink: dict | None = None):
    """A model for timing. ``kind: shape`` builds random weights with a real model's exact shapes
    (config/shapes/<name>.json), so paper-scale speed needs no download; ``shrink`` overrides
    fields to run the same code at a tiny scale on CPU."""
    if model_spec["kind"] != "shape":
        model, _ = models.load(model_spec, device)
        return model.to(dtype)
    fields = json.loads((SHAPES_DIR / f"{model_spec['name']}.json").read_text())
    config = AutoConfig.for_model(**{**fields, **(shrink or {})})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def sharing_weights(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with its own modules, buffers and ``requires_grad`` flags whose parameters use the
    same storage as ``model``'s (tied weights stay tied)."""
    memo = {id(p): torch.nn.Parameter(p.data, requires_grad=p.requires_grad) for p in model.parameters()}
    return copy.deepcopy(model, memo=memo)


class _TokenClock(LogitsProcessor):
    """``generate`` calls this once per new token, right after the forward pass that made it; the
    gaps between calls are the cached decode steps."""

    def __init__(self, device: str):
        self.device, self.times = device, []

    def __call__(self, input_ids, scores):
        _sync(self.device)
        self.times.append(time.perf_counter())
        return scores


def paired_ratio(values: list[float], reference: list[float], resamples: int = 2000) -> tuple[float, float, float]:
    """Median over rounds of ``values[i] / reference[i]`` (both timed in round i), and a 95%
    bootstrap interval of that median (fixed seed: the table is a function of the timings)."""
    ratios = np.asarray(values) / np.asarray(reference)
    medians = np.median(np.random.default_rng(0).choice(ratios, (resamples, len(ratios))), axis=1)
    return float(np.median(ratios)), float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


class Subject:
    """One row of the table: a method applied to its own view of the shared base weights."""

    def __init__(self, name: str, base: torch.nn.Module, device: str):
        self.name = name
        model = sharing_weights(base)
        torch.manual_seed(0)
        if name in (BASE_TRAIN, BASE_FORWARD):
            model.requires_grad_(False)
            model.enable_input_require_grads()  # gradients reach the input: backward runs through every layer
            self.model, self.method = model, None
        else:
            self.method = name
            self.config = methods.make_config(name, {})
            self.model = methods.get(name).apply(model, self.config)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = training.make_optimizer(params, 0.0) if params else None
        self.device = device

    def train_step(self, ids: torch.Tensor) -> None:
        self.model.train()
        loss = self.model(input_ids=ids, labels=ids).loss
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor) -> None:
        self.model.eval()
        self.model(input_ids=ids, use_cache=True)

    @torch.no_grad()
    def decode(self, prompt: torch.Tensor, new_tokens: int) -> float:
        """Seconds per decoded token with the KV cache: greedy ``generate``, clocked at each new token."""
        self.model.eval()
        clock = _TokenClock(self.device)
        self.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                            logits_processor=LogitsProcessorList([clock]))
        return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)

    def sizes(self) -> dict:
        if self.method is None:
            return {"trainable_parameters": 0, "adapter_bytes": 0}
        with tempfile.TemporaryDirectory() as tmp:
            adapters.save(self.model, Path(tmp), self.method, self.config, "cost")
            size = (Path(tmp) / adapters.WEIGHTS).stat().st_size
        return {"trainable_parameters": adapters.count_trainable(self.model), "adapter_bytes": size}


def measure(model_spec: dict, method_names: list[str], *, batch_size: int, seq_len: int, steps: int, repeats: int,
            new_tokens: int, device: str = "cpu", dtype: str = "float32", shrink: dict | None = None) -> tuple[list[dict], dict]:
    """Interleaved timing of every method and the two base rows. Returns the rows (absolute
    figures and paired ratios) and the decode resolution (the base model against itself)."""
    if new_tokens < 2:
        raise ValueError(f"cost.new_tokens is {new_tokens}; decode latency needs at least 2 new tokens")
    base = build(model_spec, device, getattr(torch, dtype), shrink)
    subjects = [Subject(name, base, device) for name in [BASE_TRAIN, BASE_FORWARD, *method_names]]
    vocab = subjects[0].model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (batch_size, seq_len), generator=generator).to(device)
    prompt = ids[:, : max(1, seq_len // 2)]
    timings = {s.name: {"step": [], "prefill": [], "decode": []} for s in subjects}
    base_again = []
    for subject in subjects:  # warm-up: first calls allocate and pick kernels
        if subject.name != BASE_FORWARD:
            subject.train_step(ids)
        subject.decode(prompt, 2)
    for round_ in range(repeats):
        for subject in subjects if round_ % 2 == 0 else subjects[::-1]:
            if subject.name != BASE_FORWARD:
                timings[subject.name]["step"].append(_timed(lambda: [subject.train_step(ids) for _ in range(steps)], device) / steps)
            timings[subject.name]["prefill"].append(_timed(lambda: subject.prefill(prompt), device))
            timings[subject.name]["decode"].append(subject.decode(prompt, new_tokens))
        base_again.append(subjects[1].decode(prompt, new_tokens))
    rows = []
    for subject in subjects:
        t = {k: min(v) if v else float("nan") for k, v in timings[subject.name].items()}
        row = {
            "method": subject.name,
            **subject.sizes(),
            "train_step_s": t["step"],
            "train_steps_per_s": 1 / t["step"],
            "train_tokens_per_s": batch_size * seq_len / t["step"],
            "prefill_s": t["prefill"],
            "decode_tokens_per_s": batch_size / t["decode"],
            "decode_s_per_token": t["decode"],
        }
        rows.append({**row, **_paired_columns(timings, subject.name)})
    resolution = dict(zip(("median", "low", "high"), paired_ratio(base_again, timings[BASE_FORWARD]["decode"])))
    return rows, resolution


def _paired_columns(timings: dict, name: str) -> dict:
    """Paired ratios of one row to LoRA and to the base rows; intervals for the two targets."""
    columns = {}
    mine = timings[name]
    for metric, reference, tag, interval in (("step", BASE_TRAIN, "base", True), ("step", "lora", "lora", False),
                                             ("decode", BASE_FORWARD, "base", True), ("prefill", BASE_FORWARD, "base", False)):
        if reference not in timings or not mine[metric]:
            continue
        median, low, high = paired_ratio(mine[metric], timings[reference][metric])
        key = {"step": "train_step_s", "decode": "decode_s_per_token", "prefill": "prefill_s"}[metric] + f"_vs_{tag}"
        columns[key] = median
        if interval:
            columns.update({f"{key}_low": low, f"{key}_high": high})
    return columns


def peak_memory(model_spec: dict, method: str, *, batch_size: int, seq_len: int, steps: int, device: str, dtype: str, shrink: dict | None) -> float:
    """Peak memory (MiB) of training ``method`` for a few steps in a fresh process."""
    request = json.dumps({"spec": model_spec, "method": method, "batch_size": batch_size, "seq_len": seq_len,
                          "steps": steps, "device": device, "dtype": dtype, "shrink": shrink})
    result = subprocess.run([sys.executable, "-m", "experiment.cost", request], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    if result.returncode != 0:
        raise RuntimeError(f"peak-memory probe for {method} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def _probe(request: dict) -> float:
    base = build(request["spec"], request["device"], getattr(torch, request["dtype"]), request["shrink"])
    subject = Subject(request["method"], base, request["device"])
    del base
    vocab = subject.model.config.vocab_size
    ids = torch.randint(10, vocab, (request["batch_size"], request["seq_len"])).to(request["device"])
    if request["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(request["steps"]):
        subject.train_step(ids) if subject.name != BASE_FORWARD else subject.prefill(ids)
    if request["device"] == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_resident_mib()


def peak_resident_mib() -> float:
    """This process's peak resident set size (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM line: peak memory on CPU is measured on Linux only")


def with_memory_ratios(rows: list[dict]) -> list[dict]:
    """Peak memory (measured after ``measure``, one process per row) as ratios to LoRA and base."""
    by_name = {r["method"]: r for r in rows}
    out = []
    for row in rows:
        extra = {}
        for ref_name, tag in (("lora", "lora"), (BASE_TRAIN, "base")):
            if ref_name in by_name:
                extra[f"peak_memory_mib_vs_{tag}"] = row["peak_memory_mib"] / by_name[ref_name]["peak_memory_mib"]
        out.append({**row, **extra})
    return out


if __name__ == "__main__":
    print(_probe(json.loads(sys.argv[1])))
