"""One function per DAG job. ``workflow/scripts/*.py`` call these with Snakemake's inputs and
outputs; tests call them directly. Each job loads the base model once."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import methods
from experiment import adapters, data, evaluation, hub, models, precision, sweep, training
from experiment.records import now, provenance, read_json, sha256, write_json


MODEL_IDENTITY = ("kind", "path", "revision", "architecture", "sha256", "requirement")


def _inputs(model_spec: dict, task_dir: Path, splits: tuple[str, ...]) -> dict:
    """Hashes of the data files a job read, where they came from (task.json's source: the hub
    revision and the commit it resolved to), and the identity of its base model."""
    return {
        "model": {k: v for k, v in model_spec.items() if k in MODEL_IDENTITY},
        "source": read_json(Path(task_dir) / "task.json").get("source"),
        "data": {f"{s}.jsonl": sha256(Path(task_dir) / f"{s}.jsonl") for s in splits},
    }


def prepare_task(task: str, source: Path | None, out_dir: Path, *, dev_size: int, test_size: int, seed: int,
                 source_overrides: dict | None = None) -> dict:
    spec = data.load_spec(task, source_overrides)
    kind = spec["source"]["kind"]
    notes = {"source": {k: v for k, v in spec["source"].items() if k in ("kind", "path", "name", "revision", "data_files", "layout", "members", "member")}}
    if kind == "jsonl":
        examples, labels = data.examples_from_jsonl(Path(source), spec)
    elif kind == "bigbench":
        examples, labels = data.examples_from_bigbench(Path(source), spec)
    elif kind == "archive":
        examples, labels = data.examples_from_archive(Path(source), spec, counts=notes)
        notes["source"]["archive"] = data.family_file(spec["family"], "archive")
    elif kind == "datasets":
        examples, labels = data.examples_from_datasets(spec, counts=notes)
        notes["source"]["commit"] = hub.resolved_dataset_commit(spec["source"]["path"], spec["source"].get("revision"))
    else:
        raise data.DataError(f"{data.task_specs()[task]}: unknown source kind {kind!r} (jsonl, bigbench, archive, datasets)")
    meta = data.prepare(spec, examples, labels, out_dir, dev_size=dev_size, test_size=test_size, seed=seed, notes=notes)
    evaluation.write_task_yaml(task, Path(out_dir) / "test.jsonl", Path(out_dir) / f"{task}.yaml")
    return meta


@dataclass
class Fit:
    """A trained run in memory: the model with its method applied, and its train record."""

    model: torch.nn.Module
    tokenizer: object
    config: object  # the method's Config
    record: dict


def _fit(model_spec: dict, method: str, overrides: dict, task_dir: Path, seed: int, learning_rate: float, train_config: dict,
         device: str, loaded: tuple | None = None) -> Fit:
    """Seed, load the base model (or copy ``loaded``, a (model, tokenizer) pair loaded once for
    several fits: loading draws no random numbers, so the result is the same), apply the method,
    train on this seed's few shots."""
    meta = read_json(task_dir / "task.json")
    pool = data.load_split(task_dir / "train.jsonl", meta["labels"])
    per_class = train_config.get("examples_per_class", 1)
    shots = data.draw_per_class(pool, meta["labels"], per_class, seed)
    training.seed_everything(seed)
    base, tokenizer = (copy.deepcopy(loaded[0]), loaded[1]) if loaded else models.load(model_spec, device)
    config = methods.make_config(method, overrides)
    model = methods.get(method).apply(base, config)
    if adapters.count_trainable(model) == 0:
        raise ValueError(f"apply() of {methods.source_file(method).relative_to(methods.METHODS_DIR.parent)} returned a model "
                         "with no trainable parameters: it must leave the method's own parameters requires_grad=True")
    # The precision that runs, so the record says fp32 or bf16-mixed where the profile says auto.
    train_config = {**train_config, "precision": precision.resolve(train_config.get("precision", "fp32"), model)}
    loop = training.TrainConfig(**{k: v for k, v in train_config.items() if k != "examples_per_class"})
    record = {
        "method": method,
        # The method's source as it ran: a dropped-in file is in no commit (records.git_state).
        "method_source_sha256": sha256(methods.source_file(method)),
        "config": methods.config_dict(config),
        "learning_rate": learning_rate,
        "train_config": train_config,
        "trainable_parameters": adapters.count_trainable(model),
        "train_examples": [row["id"] for row in shots],
    }
    try:
        record.update(training.train(model, tokenizer, shots, loop, learning_rate, seed), status="ok")
    except training.TrainingDiverged as err:
        record.update(status="failed", error=str(err))
    return Fit(model, tokenizer, config, record)


def _fit_learned(model_spec: dict, method: str, overrides: dict, task_dir: Path, seed: int, learning_rate: float,
                 train_config: dict, device: str) -> Fit:
    """``_fit``, and once more at half the rate (the grid's next point below) if the run diverged.

    The rate is chosen on the sweep's seed; another seed's run can diverge at it, and a run that
    diverged never learned its shots, so it would judge the method by a broken model rather than by
    what it learned (docs/protocol.md). The retry uses training loss alone, the same for every
    method; the record keeps the diverged attempt (``diverged_attempt``)."""
    fit = _fit(model_spec, method, overrides, task_dir, seed, learning_rate, train_config, device)
    if not fit.record.get("diverged"):
        return fit
    attempt = {key: fit.record[key] for key in ("learning_rate", "steps", "losses")}
    del fit  # one model in memory at a time (a 7B full fine-tuning run fills a GPU)
    fit = _fit(model_spec, method, overrides, task_dir, seed, learning_rate / 2, train_config, device)
    fit.record["diverged_attempt"] = attempt
    return fit


def train_run(*, model_name: str, model_spec: dict, method: str, overrides: dict, task: str, task_dir: Path, seed: int,
              learning_rate: float, train_config: dict, adapter_dir: Path, record_path: Path, eval_path: Path | None = None,
              batch_size: int = 8, device: str = "cpu", keep_weights: bool = True) -> dict:
    """Train one run and save its adapter and record. With ``eval_path`` the trained model is
    also scored on test in the same job, as the DAG does: one start-up and one model load a run
    (scoring in memory equals scoring the saved adapter: tests/test_reliability.py)."""
    started = now()
    fit = _fit_learned(model_spec, method, overrides, Path(task_dir), seed, learning_rate, train_config, device)
    return _keep_run(fit, started=started, model_name=model_name, model_spec=model_spec, task=task, task_dir=Path(task_dir),
                     seed=seed, adapter_dir=adapter_dir, record_path=record_path, eval_path=eval_path, batch_size=batch_size,
                     keep_weights=keep_weights)


def _keep_run(fit: Fit, *, started: str, model_name: str, model_spec: dict, task: str, task_dir: Path, seed: int,
              adapter_dir: Path, record_path: Path, eval_path: Path | None, batch_size: int, keep_weights: bool = True) -> dict:
    """Save a fitted run: its adapter (without weights unless ``keep_weights``), its train
    record and, with ``eval_path``, its test score."""
    record = fit.record
    Path(adapter_dir).mkdir(parents=True, exist_ok=True)
    if record["status"] == "ok":
        adapters.save(fit.model, adapter_dir, record["method"], fit.config, model_name, weights=keep_weights)
        record["weights_kept"] = keep_weights
    _stamp(record, started=started, model_name=model_name, model_spec=model_spec, task=task, task_dir=task_dir, seed=seed,
           splits=("train",))
    write_json(record_path, record)
    if eval_path is not None:
        _evaluation_record(model_name=model_name, model_spec=model_spec, task=task, task_dir=task_dir, split="test",
                           batch_size=batch_size, record_path=eval_path, method=record["method"], seed=seed,
                           trained=record, load=lambda: (fit.model, fit.tokenizer))
    return record


def evaluate_run(*, model_name: str, model_spec: dict, task: str, task_dir: Path, split: str, batch_size: int,
                 record_path: Path, adapter_dir: Path | None = None, train_record: Path | None = None,
                 method: str = "base", seed: int | None = None, device: str = "cpu") -> dict:
    """Evaluate a saved adapter (or the base model when ``adapter_dir`` is None) on a split of
    ``task``, which for the IID/OOD analysis is not the task the adapter was trained on."""

    def load():
        model, tokenizer = models.load(model_spec, device)
        return (model if adapter_dir is None else adapters.load(model, adapter_dir)), tokenizer

    trained = read_json(train_record) if train_record else {"status": "ok"}
    return _evaluation_record(model_name=model_name, model_spec=model_spec, task=task, task_dir=Path(task_dir), split=split,
                              batch_size=batch_size, record_path=record_path, method=method, seed=seed, trained=trained, load=load)


def _evaluation_record(*, model_name: str, model_spec: dict, task: str, task_dir: Path, split: str, batch_size: int,
                       record_path: Path, method: str, seed: int | None, trained: dict, load) -> dict:
    """Score the model ``load()`` returns on ``split`` and write the record; a failed training
    run (``trained``, its train record) gets a failed record and loads nothing."""
    record = {"model": model_name, "method": method, "task": task, "seed": seed, "split": split, "started_at": now()}
    if "task" in trained:
        record["trained_on"] = trained["task"]
    if trained["status"] != "ok":
        record.update(status="failed", error=f"training failed: {trained.get('error')}")
    else:
        model, tokenizer = load()
        start = time.perf_counter()
        labels = read_json(task_dir / "task.json")["labels"]
        result = evaluation.evaluate(model, tokenizer, task, task_dir / f"{split}.jsonl", labels, batch_size)
        record.update(result, status="ok", batch_size=batch_size, eval_seconds=round(time.perf_counter() - start, 3))
        record["trainable_parameters"] = trained.get("trainable_parameters", 0)
        record["learning_rate"] = trained.get("learning_rate")
        # The stopping rule's verdict, so the tables can count the runs that hit the cap.
        record["converged"] = trained.get("converged")
        record["train_steps"] = trained.get("steps")
        # Trained again at half the rate after diverging at the chosen one (_fit_learned).
        record["retrained_after_divergence"] = "diverged_attempt" in trained
    record.update(finished_at=now(), inputs=_inputs(model_spec, task_dir, (split,)), provenance=provenance())
    write_json(record_path, record)
    return record


def train_and_evaluate(*, model_name: str, model_spec: dict, method: str, overrides: dict, task: str, task_dir: Path,
                       seed: int, learning_rate: float, train_config: dict, batch_size: int, out_path: Path,
                       device: str = "cpu", **labels) -> dict:
    """``train_run`` for a method variant that keeps no adapter (the feature-map ablation): the
    test score goes into the train record (``test``) instead of an eval record of its own.
    ``labels`` (e.g. ``variant``) are copied into the record."""
    started = now()
    fit = _fit_learned(model_spec, method, overrides, Path(task_dir), seed, learning_rate, train_config, device)
    record = fit.record
    if record["status"] == "ok":
        record["test"] = _score(fit.model, fit.tokenizer, task, Path(task_dir), "test", batch_size)
    _stamp(record, started=started, model_name=model_name, model_spec=model_spec, task=task, task_dir=task_dir, seed=seed,
           splits=("train", "test"), **labels)
    write_json(out_path, record)
    return record


def _stamp(record: dict, *, started: str, model_name: str, model_spec: dict, task: str, task_dir: Path, seed: int,
           splits: tuple[str, ...], **labels) -> None:
    """What every train record ends with: which run it is, when, the inputs it read, provenance."""
    record.update(labels, model=model_name, task=task, seed=seed, started_at=started, finished_at=now(),
                  inputs=_inputs(model_spec, task_dir, splits), provenance=provenance())


def _score(model, tokenizer, task: str, task_dir: Path, split: str, batch_size: int) -> dict:
    """Score an in-memory model on one split of a prepared task."""
    labels = read_json(task_dir / "task.json")["labels"]
    return evaluation.evaluate(model, tokenizer, task, task_dir / f"{split}.jsonl", labels, batch_size)


def sweep_learning_rate(*, model_name: str, model_spec: dict, method: str, overrides: dict, task: str, task_dir: Path,
                        seed: int, multipliers: list[float], max_extensions: int, train_config: dict, batch_size: int,
                        out_path: Path, run: dict | None = None, device: str = "cpu") -> dict:
    """Train once per candidate learning rate on ``seed``'s shots, score each on dev, extend the
    grid while the best sits at its edge (experiment/sweep.py), and keep the best.

    The chosen candidate is the very run that (seed, chosen rate) trains
    (tests/test_reliability.py), so with ``run`` (``adapter_dir``, ``record_path``,
    ``eval_path``) it is saved and scored on test as that seed's run instead of being trained
    again. Memory: the loaded base plus one candidate at a time; the best so far is kept as its
    trainable weights on the CPU, and put back on a copy of the base at the end."""
    loaded = models.load(model_spec, device)

    def train_and_score(lr: float):
        started = now()
        fit = _fit(model_spec, method, overrides, Path(task_dir), seed, lr, train_config, device, loaded)
        candidate = {"losses": fit.record.get("losses"), "converged": fit.record.get("converged")}
        if fit.record["status"] != "ok":
            candidate.update(dev_accuracy=None, error=fit.record["error"])
        elif sweep.loss_diverged(fit.record["losses"]):
            # Never chosen whatever its dev score, and the costliest to score (it rarely ends
            # its turn, so every dev example runs to max_gen_toks): 2.4 min on hotel reviews.
            candidate.update(dev_accuracy=None, skipped="diverged: never chosen, so not scored on dev")
        else:
            dev = _score(fit.model, fit.tokenizer, task, Path(task_dir), "dev", batch_size)
            candidate.update(dev_accuracy=dev["accuracy"], final_loss=fit.record["losses"][-1])
        return candidate, lambda: (adapters.trainable_state(fit.model), fit.record, fit.config, started)

    default = methods.make_config(method, overrides).learning_rate
    candidates, kept = sweep.search(train_and_score, default, multipliers, max_extensions)
    chosen = sweep.best(candidates)
    if chosen is None:
        raise training.TrainingDiverged(f"{method} on {task}: training diverged at every learning rate {sorted(candidates)}")
    if run is not None:
        state, record, config, started = kept
        model = adapters.restore(copy.deepcopy(loaded[0]), method, config, state)
        _keep_run(Fit(model, loaded[1], config, record), started=started, model_name=model_name,
                  model_spec=model_spec, task=task, task_dir=Path(task_dir), seed=seed, batch_size=batch_size, **run)
    choice = {"model": model_name, "method": method, "task": task, "seed": seed, "learning_rate": chosen, "bracket": sweep.bracket(candidates),
              "candidates": {str(lr): candidates[lr] for lr in sorted(candidates)}, "provenance": provenance()}
    write_json(out_path, choice)
    return choice


def set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, int(threads)))


def length_sweep_run(*, model_name: str, model_spec: dict, method: str, task: str, task_dir: Path, seed: int,
                     adapter_dir: Path, lengths: list[int], examples: int, alpha_examples: int, batch_size: int,
                     out_path: Path, device: str = "cpu") -> dict:
    """Accuracy of one trained adapter as neutral context grows; alpha per layer for Prefix-Tuning."""
    from experiment import length_sweep

    meta = read_json(Path(task_dir) / "task.json")
    base, tokenizer = models.load(model_spec, device)
    model = adapters.load(base, adapter_dir)
    windows = {}
    record = {"model": model_name, "method": method, "task": task, "seed": seed, "examples": examples,
              "accuracy": {str(k): v for k, v in length_sweep.accuracy_by_length(
                  model, tokenizer, task, Path(task_dir), meta, lengths, examples, batch_size, windows).items()}}
    record["prompt_window"] = {str(k): v for k, v in windows.items()}
    if method == "prefix_tuning":
        rows = data.load_split(Path(task_dir) / "test.jsonl", meta["labels"])[:alpha_examples]
        record["prefix_attention_share"] = {
            str(length): length_sweep.prefix_attention_share(
                model, tokenizer, [r["prompt"] for r in length_sweep.with_context(rows, meta, length_sweep.neutral_context(tokenizer, length))])
            for length in lengths
        }
    record.update(finished_at=now(), provenance=provenance())
    write_json(out_path, record)
    return record


def attention_maps(*, model_spec: dict, task_dir: Path, adapter_dirs: dict[str, Path], layer: int, example: int, device: str = "cpu"):
    """Head-averaged attention of one layer on one test input: the base model and each adapter.
    Returns {name: (matrix, number of prefix columns)}."""
    from experiment import probes

    row = data.load_split(Path(task_dir) / "test.jsonl")[example]
    maps = {}
    for name, folder in {"base": None, **adapter_dirs}.items():
        model, tokenizer = models.load(model_spec, device)
        if folder is not None:
            model = adapters.load(model, folder)
        matrix = probes.attention_map(model, tokenizer, row["prompt"], layer)
        maps[name] = (matrix, matrix.shape[1] - matrix.shape[0])
    return maps


def expressiveness(*, model_spec: dict, task_dir: Path, adapter_dirs: dict[str, Path], layers: list[int], examples: int, device: str = "cpu"):
    """Normalised covariance spectra of the vectors each method adds at each layer:
    rows of (method, layer, rank, eigenvalue)."""
    from experiment import probes

    rows = data.load_split(Path(task_dir) / "test.jsonl")[:examples]
    spectra = []
    for method, folder in adapter_dirs.items():
        base, tokenizer = models.load(model_spec, device)
        model = adapters.load(base, folder)
        for layer in layers:
            vectors = probes.added_vectors(model, method, tokenizer, [r["prompt"] for r in rows], layer)
            spectra += [{"method": method, "layer": layer, "rank": k + 1, "eigenvalue": float(v)}
                        for k, v in enumerate(probes.normalised_spectrum(vectors))]
    return spectra
