"""What each method costs: trainable parameters, adapter size, training speed and memory,
inference latency, side by side in each of a few fresh processes.

The machines are noisy, so methods are measured in interleaved rounds, in three phases:
training steps, prefill, and cached decode steps (a decode never follows a large training
step). Each phase has a reference, timed at both ends of every round (R A B C R', then
R' C B A R: directions alternate, so no subject always follows the same one):

* ``base (forward+backward)``: the frozen base model with gradients flowing to its input, the
  floor every method that trains something inside the network pays;
* ``base (forward only)``: inference.

Every ratio (to LoRA, to the base rows) is paired: the median over rounds of a method's time
divided by the reference's time in the same round, so slow drifts of the machine cancel. The
reference's second timing against its first is the A/A line: what the measurement can resolve.

The rounds run in several fresh processes, one after another, each loading the model anew. One
process's level can sit a point or more away from another's: with one process per run, the
Prefix-Tuning+ decode ratio read 1.039 [1.031, 1.046] in one run and 1.052 [1.045, 1.063] in
the next, with the same code, each interval computed from the rounds of its one process. So
the 95% interval is a bootstrap over processes and then over rounds within them, and each
process's own median is reported beside it. Absolute times are the fastest round of any
process, since noise on a shared machine only ever adds time (the reasoning of ``timeit``).

Two clocks on CPU: wall time, and the process's CPU time (``time.process_time``), which time
spent preempted or descheduled does not add to, so a gap between the two would show such
noise. On the 2-core machine of the committed run they agreed to the third decimal: the noise
the first versions suffered came from two compute threads and from what ran just before a
timing, which the phases and the reference at both ends address. With one torch thread (the
DAG's default) CPU time is the compute itself. On a GPU only wall time, after synchronising.

Every subject reads the same frozen weight tensors (its own modules, shared parameter storage),
so that where the weights happen to lie in memory cannot favour one method: decoding on a CPU is
bound by memory bandwidth, and two separately loaded copies of the same model differed by up to
8% in decode speed here. The optimizers run with learning rate 0: AdamW does all of its work, and
the shared weights stay the base model's.

Decode latency is one cached decode step (one new token for the whole batch, with the KV cache
of the prompt), and decode steps have a phase of their own, interleaved step by step: every
subject decodes one token, then the next round starts, so subjects compared with each other ran
within a fraction of a second. Each step's token is cropped from the cache afterwards, so every
step does the same work. Timing whole ``generate`` calls, as the previous version did, put 20 s
between the reference and its A/A twin and could not resolve 3% (A/A intervals of +-3% to +-5%).

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
from transformers import AutoConfig, AutoModelForCausalLM

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


def clocks(device: str) -> tuple[str, ...]:
    """Wall time always; on CPU also the process's CPU time, which a preempted or descheduled
    process does not accrue (on a GPU the host's CPU time says nothing about the kernels)."""
    return ("wall",) if device == "cuda" else ("wall", "cpu")


def _now(device: str) -> dict[str, float]:
    _sync(device)
    return {"wall": time.perf_counter(), "cpu": time.process_time()}


def _timed(fn, device: str, per: int = 1) -> dict[str, float]:
    start = _now(device)
    fn()
    end = _now(device)
    return {clock: (end[clock] - start[clock]) / per for clock in clocks(device)}


def sharing_weights(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with its own modules, buffers and ``requires_grad`` flags whose parameters use the
    same storage as ``model``'s (tied weights stay tied)."""
    memo = {id(p): torch.nn.Parameter(p.data, requires_grad=p.requires_grad) for p in model.parameters()}
    return copy.deepcopy(model, memo=memo)


def paired_ratio(values, reference, resamples: int = 2000) -> tuple[float, float, float]:
    """Median of ``values[p][i] / reference[p][i]`` (both timed in round i of process p) over all
    rounds of all processes, and a 95% interval of that median from a two-level bootstrap:
    processes drawn with replacement, then rounds within each. A process's level moves (where
    its memory lies, the host's state while it ran), so rounds of one process are not
    independent draws, and only the first level lets that show. A flat list is one process.
    Fixed seed: the table is a function of the timings."""
    ratios = np.atleast_2d(np.asarray(values, dtype=float) / np.asarray(reference, dtype=float))  # [processes, rounds]
    processes, rounds = ratios.shape
    rng = np.random.default_rng(0)
    picked = rng.integers(processes, size=(resamples, processes, 1))
    within = rng.integers(rounds, size=(resamples, processes, rounds))
    medians = np.median(ratios[picked, within].reshape(resamples, -1), axis=1)
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
    def prefill(self, ids: torch.Tensor):
        self.model.eval()
        return self.model(input_ids=ids, use_cache=True)

    def start_decoding(self, prompt: torch.Tensor) -> None:
        """Prefill ``prompt`` and keep its KV cache and next token for ``decode_step``."""
        from peft import PeftModel  # here, not at the top: the peak-memory probe imports this module

        out = self.prefill(prompt)
        self.cache, self.next_token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        # PeftModel.forward puts Prefix-Tuning's prefix in place of any cache it is given (peft's
        # generate goes around it), so cached steps call the model underneath, as generate does.
        self._decoder = self.model.base_model if isinstance(self.model, PeftModel) else self.model

    @torch.no_grad()
    def decode_step(self) -> torch.Tensor:
        """One token for the whole batch with the KV cache (cropped again afterwards): its logits."""
        logits = self._decoder(input_ids=self.next_token, past_key_values=self.cache, use_cache=True).logits
        self.cache.crop(-1)
        return logits

    def sizes(self) -> dict:
        if self.method is None:
            return {"trainable_parameters": 0, "adapter_bytes": 0}
        with tempfile.TemporaryDirectory() as tmp:
            adapters.save(self.model, Path(tmp), self.method, self.config, "cost")
            size = (Path(tmp) / adapters.WEIGHTS).stat().st_size
        return {"trainable_parameters": adapters.count_trainable(self.model), "adapter_bytes": size}


def interleaved(subjects: list[Subject], timings, repeats: int) -> tuple[dict, dict]:
    """Rounds of ``timings(subject)`` (-> {metric: {clock: seconds}}) over every subject. The
    first subject is the reference and is timed at both ends of each round; its second timing
    is its A/A twin. Rounds alternate direction (A B C A', then A' C B A), so no subject always
    follows the same one. Returns {name: {metric: {clock: [seconds per round]}}} and the twin's."""
    found = {s.name: {} for s in subjects}
    twin = {}
    order = [*subjects, None]  # None: the reference again
    for round_ in range(repeats):
        for subject in order if round_ % 2 == 0 else order[::-1]:
            target = twin if subject is None else found[subject.name]
            for metric, by_clock in timings(subjects[0] if subject is None else subject).items():
                for clock, seconds in by_clock.items():
                    target.setdefault(metric, {}).setdefault(clock, []).append(seconds)
    return found, twin


def prompt_length(seq_len: int) -> int:
    """Prefill and decode start from the first half of the training sequence."""
    return max(1, seq_len // 2)


def measure(model_spec: dict, method_names: list[str], *, batch_size: int, seq_len: int, steps: int, repeats: int,
            decode_steps: int, processes: int = 1, device: str = "cpu", dtype: str = "float32",
            shrink: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Interleaved timing of every method and the two base rows, in ``processes`` fresh processes
    run one after another (``time_subjects``, ``repeats`` rounds each). Returns the rows (absolute
    figures and paired ratios, per clock) and the resolution: each phase's reference against its
    own A/A twin. Why several processes: the module docstring."""
    request = {"spec": model_spec, "methods": method_names, "batch_size": batch_size, "seq_len": seq_len, "steps": steps,
               "repeats": repeats, "decode_steps": decode_steps, "device": device, "dtype": dtype, "shrink": shrink,
               "threads": torch.get_num_threads()}
    runs = [in_fresh_process("time", {**request, "sizes": index == 0}) for index in range(processes)]
    return summarise(runs, batch_size=batch_size, seq_len=seq_len, device=device)


def time_subjects(request: dict) -> dict:
    """One process's share (``measure``'s arguments as a dict): warm-up, then the three phases
    of interleaved rounds: training steps (``repeats`` rounds), prefill (``repeats``) and cached
    decode steps (``repeats`` x ``decode_steps`` rounds of one step each). Returns the timings
    {name: {metric: {clock: [seconds per round]}}}, the references' A/A twins and, if
    ``request["sizes"]``, each row's sizes (one process saves the adapters for that: full
    fine-tuning's is the whole model)."""
    device, steps = request["device"], request["steps"]
    torch.set_num_threads(request["threads"])
    base = build(request["spec"], device, getattr(torch, request["dtype"]), request["shrink"])
    method_names = request["methods"]
    subjects = {name: Subject(name, base, device) for name in [BASE_TRAIN, BASE_FORWARD, *method_names]}
    vocab = subjects[BASE_TRAIN].model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (request["batch_size"], request["seq_len"]), generator=generator).to(device)
    prompt = ids[:, : prompt_length(request["seq_len"])]
    trainers = [subjects[n] for n in [BASE_TRAIN, *method_names]]
    readers = [subjects[n] for n in [BASE_FORWARD, *method_names]]
    for subject in trainers:  # warm-up: first calls allocate and pick kernels
        subject.train_step(ids)
    for subject in readers:  # start_decoding prefills: both inference phases are warmed up
        subject.start_decoding(prompt)
        subject.decode_step()

    def train(subject):
        return {"step": _timed(lambda: [subject.train_step(ids) for _ in range(steps)], device, per=steps)}

    repeats = request["repeats"]
    trained, train_twin = interleaved(trainers, train, repeats)
    prefilled, _ = interleaved(readers, lambda subject: {"prefill": _timed(lambda: subject.prefill(prompt), device)}, repeats)
    decoded, decode_twin = interleaved(readers, lambda subject: {"decode": _timed(subject.decode_step, device)},
                                       repeats * request["decode_steps"])
    return {"timings": {name: {**trained.get(name, {}), **prefilled.get(name, {}), **decoded.get(name, {})} for name in subjects},
            "twins": {"step": train_twin["step"], "decode": decode_twin["decode"]},
            "sizes": {name: subject.sizes() for name, subject in subjects.items()} if request["sizes"] else None}


def summarise(runs: list[dict], *, batch_size: int, seq_len: int, device: str) -> tuple[list[dict], list[dict]]:
    """Rows and resolution from the runs of ``time_subjects``: absolute times are the fastest
    round of any process; ratios pool every process's rounds (``paired_ratio``)."""
    timings = {name: {metric: {clock: [run["timings"][name][metric][clock] for run in runs] for clock in by_clock}
                      for metric, by_clock in by_metric.items()}
               for name, by_metric in runs[0]["timings"].items()}
    rows = []
    for name, sizes in runs[0]["sizes"].items():
        t = {metric: min(min(per_process) for per_process in timings[name][metric]["wall"]) if metric in timings[name] else float("nan")
             for metric in ("step", "prefill", "decode")}
        row = {
            "method": name,
            **sizes,
            "train_step_s": t["step"],
            "train_steps_per_s": 1 / t["step"],
            "train_tokens_per_s": batch_size * seq_len / t["step"],
            "prefill_s": t["prefill"],
            "decode_tokens_per_s": batch_size / t["decode"],
            "decode_s_per_token": t["decode"],
        }
        rows.append({**row, **_paired_columns(timings, name, clocks(device))})
    resolution = [{"metric": COLUMN[metric], "reference": reference, "clock": clock,
                   **dict(zip(("median", "low", "high"), paired_ratio([run["twins"][metric][clock] for run in runs],
                                                                      timings[reference][metric][clock]))),
                   "by_process": _by_process([run["twins"][metric][clock] for run in runs], timings[reference][metric][clock])}
                  for metric, reference in (("step", BASE_TRAIN), ("decode", BASE_FORWARD))
                  for clock in clocks(device)]
    return rows, resolution


COLUMN = {"step": "train_step_s", "decode": "decode_s_per_token", "prefill": "prefill_s"}


def _suffix(clock: str) -> str:
    """Ratio columns on the wall clock have no suffix; other clocks' end in ``_<clock>``."""
    return "" if clock == "wall" else f"_{clock}"


def _paired_columns(timings: dict, name: str, clock_names: tuple[str, ...]) -> dict:
    """Paired ratios of one row to LoRA and to the base rows, per clock (wall: no suffix); for
    the targets (train step and decode, against the base rows and LoRA) also the interval and
    each process's own median."""
    columns = {}
    mine = timings[name]
    for clock in clock_names:
        for metric, reference, tag, interval in (("step", BASE_TRAIN, "base", True), ("step", "lora", "lora", True),
                                                 ("decode", BASE_FORWARD, "base", True), ("decode", "lora", "lora", True),
                                                 ("prefill", BASE_FORWARD, "base", False)):
            if reference not in timings or metric not in mine or metric not in timings[reference]:
                continue
            median, low, high = paired_ratio(mine[metric][clock], timings[reference][metric][clock])
            key = f"{COLUMN[metric]}_vs_{tag}{_suffix(clock)}"
            columns[key] = median
            if interval:
                columns.update({f"{key}_low": low, f"{key}_high": high,
                                f"{key}_by_process": _by_process(mine[metric][clock], timings[reference][metric][clock])})
    return columns


def _by_process(values: list[list[float]], reference: list[list[float]]) -> str:
    """Each process's own paired median, in the order the processes ran."""
    return " ".join(f"{np.median(np.divide(v, r)):.3f}" for v, r in zip(values, reference))


def _interval(row: dict, key: str) -> str:
    if key not in row or row[key] != row[key]:  # absent or NaN
        return ""
    if f"{key}_low" not in row:
        return f"{row[key]:.3f}"
    return f"{row[key]:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"


def markdown(rows: list[dict], resolution: list[dict], setting: str) -> str:
    """Three readable tables: absolute figures, paired ratios per clock, and the A/A resolution
    (the CSV has every column)."""
    import pandas as pd

    absolute = pd.DataFrame(rows)[["method", "trainable_parameters", "adapter_bytes", "train_step_s", "train_tokens_per_s",
                                    "prefill_s", "decode_tokens_per_s", "peak_memory_mib"]]
    clock_names = dict.fromkeys(r["clock"] for r in resolution)  # wall first, as measured
    ratios = pd.DataFrame([
        {"method": r["method"], "clock": clock,
         "train step / base fwd+bwd": _interval(r, f"train_step_s_vs_base{_suffix(clock)}"),
         "train step / LoRA": _interval(r, f"train_step_s_vs_lora{_suffix(clock)}"),
         "decode s/token / base": _interval(r, f"decode_s_per_token_vs_base{_suffix(clock)}"),
         "decode / LoRA": _interval(r, f"decode_s_per_token_vs_lora{_suffix(clock)}"),
         "prefill / base": _interval(r, f"prefill_s_vs_base{_suffix(clock)}"),
         "train / base, each process": r.get(f"train_step_s_vs_base{_suffix(clock)}_by_process", ""),
         "decode / base, each process": r.get(f"decode_s_per_token_vs_base{_suffix(clock)}_by_process", "")}
        for clock in clock_names for r in rows])
    aa = pd.DataFrame([{"metric": r["metric"], "clock": r["clock"], "A/A ratio": f"{r['median']:.3f} [{r['low']:.3f}, {r['high']:.3f}]",
                        "each process": r["by_process"]} for r in resolution])
    return (f"{setting}.\n\n" + absolute.to_markdown(index=False, floatfmt=".4g")
            + "\n\nPaired median over the rounds of every process [95% interval, bootstrap over processes and rounds], "
            "and each process's own median:\n\n" + ratios.to_markdown(index=False)
            + "\n\nResolution: each phase's reference timed again at the other end of every round, against itself "
            "(a ratio whose interval lies outside this one's is a real difference):\n\n" + aa.to_markdown(index=False) + "\n")


def in_fresh_process(job: str, request: dict):
    """``JOBS[job](request)`` in a new Python process, which has only its own models in memory
    and its own peak; returns the job's JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        result = subprocess.run([sys.executable, "-m", "experiment.cost", job, json.dumps(request), str(out)],
                                capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        if result.returncode != 0:
            raise RuntimeError(f"cost: the {job!r} process for {json.dumps(request)[:300]} failed:\n{result.stderr[-2000:]}")
        return json.loads(out.read_text())


def peak_memory(model_spec: dict, method: str, *, batch_size: int, seq_len: int, steps: int, device: str, dtype: str, shrink: dict | None) -> float:
    """Peak memory (MiB) of training ``method`` for a few steps in a fresh process."""
    return in_fresh_process("peak", {"spec": model_spec, "method": method, "batch_size": batch_size, "seq_len": seq_len,
                                     "steps": steps, "device": device, "dtype": dtype, "shrink": shrink})


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


JOBS = {"time": time_subjects, "peak": _probe}

if __name__ == "__main__":
    job, request, out = sys.argv[1:]
    Path(out).write_text(json.dumps(JOBS[job](json.loads(request))))
