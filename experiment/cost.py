"""What each method costs: trainable parameters, adapter size, training speed and memory,
inference latency, side by side in one process.

The machines are noisy, so methods are measured in interleaved rounds (method A, B, C, A, B, C,
...) and every figure is also reported as a ratio to LoRA and to the frozen base model measured
in the same run. Two reference rows bound what any adapter can cost:

* ``base (forward+backward)``: the frozen base model with gradients flowing to its input, the
  floor every method that trains something inside the network pays;
* ``base (forward only)``: inference.

Every subject reads the same frozen weight tensors (its own modules, shared parameter storage),
so that where the weights happen to lie in memory cannot favour one method: decoding on a CPU is
bound by memory bandwidth, and two separately loaded copies of the same model differed by up to
8% in decode speed here. The optimizers run with learning rate 0: AdamW does all of its work, and
the shared weights stay the base model's. Each time is the fastest of the interleaved repeats,
since noise on a shared machine only ever adds time (the reasoning of ``timeit``).

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

import torch
from transformers import AutoConfig, AutoModelForCausalLM

import methods
from experiment import adapters, models

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
        self.optimizer = torch.optim.AdamW(params, lr=0.0) if params else None
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
    def generate(self, ids: torch.Tensor, new_tokens: int) -> None:
        self.model.eval()
        self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, do_sample=False, use_cache=True)

    def sizes(self) -> dict:
        if self.method is None:
            return {"trainable_parameters": 0, "adapter_bytes": 0}
        with tempfile.TemporaryDirectory() as tmp:
            adapters.save(self.model, Path(tmp), self.method, self.config, "cost")
            size = (Path(tmp) / adapters.WEIGHTS).stat().st_size
        return {"trainable_parameters": adapters.count_trainable(self.model), "adapter_bytes": size}


def measure(model_spec: dict, method_names: list[str], *, batch_size: int, seq_len: int, steps: int, repeats: int,
            new_tokens: int, device: str = "cpu", dtype: str = "float32", shrink: dict | None = None) -> list[dict]:
    """Interleaved timing of every method and the two base rows."""
    base = build(model_spec, device, getattr(torch, dtype), shrink)
    subjects = [Subject(name, base, device) for name in [BASE_TRAIN, BASE_FORWARD, *method_names]]
    vocab = subjects[0].model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (batch_size, seq_len), generator=generator).to(device)
    prompt = ids[:, : max(1, seq_len // 2)]
    timings = {s.name: {"step": [], "prefill": [], "generate": []} for s in subjects}
    for subject in subjects:  # warm-up: first calls allocate and pick kernels
        if subject.name != BASE_FORWARD:
            subject.train_step(ids)
        subject.prefill(prompt)
    for _ in range(repeats):
        for subject in subjects:
            if subject.name != BASE_FORWARD:
                timings[subject.name]["step"].append(_timed(lambda: [subject.train_step(ids) for _ in range(steps)], device) / steps)
            timings[subject.name]["prefill"].append(_timed(lambda: subject.prefill(prompt), device))
            timings[subject.name]["generate"].append(_timed(lambda: subject.generate(prompt, new_tokens), device))
    rows = []
    for subject in subjects:
        t = {k: min(v) if v else float("nan") for k, v in timings[subject.name].items()}
        decode = max(t["generate"] - t["prefill"], 1e-9)
        rows.append({
            "method": subject.name,
            **subject.sizes(),
            "train_step_s": t["step"],
            "train_steps_per_s": 1 / t["step"] if t["step"] == t["step"] else float("nan"),
            "train_tokens_per_s": batch_size * seq_len / t["step"] if t["step"] == t["step"] else float("nan"),
            "prefill_s": t["prefill"],
            "decode_tokens_per_s": batch_size * new_tokens / decode,
            "decode_s_per_token": decode / new_tokens,
        })
    return rows


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


def with_ratios(rows: list[dict]) -> list[dict]:
    by_name = {r["method"]: r for r in rows}
    out = []
    for row in rows:
        extra = {}
        for ref_name, tag in (("lora", "lora"), (BASE_TRAIN, "base")):
            ref = by_name.get(ref_name)
            if ref is None:
                continue
            for key in ("train_step_s", "peak_memory_mib"):
                if key in row and key in ref and ref[key] == ref[key] and ref[key]:
                    extra[f"{key}_vs_{tag}"] = row[key] / ref[key]
        base_fwd = by_name[BASE_FORWARD]
        extra["decode_s_per_token_vs_base"] = row["decode_s_per_token"] / base_fwd["decode_s_per_token"]
        extra["prefill_s_vs_base"] = row["prefill_s"] / base_fwd["prefill_s"]
        out.append({**row, **extra})
    return out


if __name__ == "__main__":
    print(_probe(json.loads(sys.argv[1])))
