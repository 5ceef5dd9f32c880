"""Evaluation through lm-evaluation-harness, in-process, on a model instance."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import re  # noqa: E402

from experiment import prompts  # noqa: E402
from experiment.data import EVALS_DIR  # noqa: E402
from experiment.records import write_text  # noqa: E402

TEMPLATE = EVALS_DIR / "_classification.yaml"
METRIC = "exact_match,label"


# Tokens beyond the longest label: leading blank lines, and a short sentence for the lenient
# score to read. A trained model ends its turn after the label and stops long before.
ROOM = 24


def generation_bound(split_file: Path) -> int:
    """Tokens to generate at most: the UTF-8 bytes of the longest label in the split with a
    leading space (a token is at least one byte, so the label always fits), plus ``ROOM``."""
    lines = Path(split_file).read_text().splitlines()
    return ROOM + max(len((" " + json.loads(line)["label"]).encode()) for line in lines if line.strip())


def first_line(generation: str) -> str:
    """The first non-empty line, stripped: what the template's regex filter keeps."""
    match = re.search(r"\S[^\n]*", generation)
    return match.group(0).strip() if match else ""


def labels_named(line: str, labels: list[str]) -> set[str]:
    """The labels ``line`` names as whole words, case-insensitively; a label inside a longer
    label that is named ("Facts" in "Dropped Facts") does not count on its own."""
    named, text = set(), line.casefold()
    for label in sorted(labels, key=len, reverse=True):
        pattern = r"(?<!\w)" + re.escape(label.casefold()) + r"(?!\w)"
        if re.search(pattern, text):
            named.add(label)
            text = re.sub(pattern, " ", text)
    return named


def lenient_correct(generation: str, label: str, labels: list[str]) -> bool:
    """The secondary score: the answer's first line names exactly one label, the right one
    (format and zero-shot knowledge reported apart: a sentence that names the label counts)."""
    return labels_named(first_line(generation), labels) == {label}


def task_config(task: str, split_file: Path) -> dict:
    """The lm-eval task for one prepared split: the shared template and this task's data."""
    config = copy.deepcopy(yaml.safe_load(TEMPLATE.read_text()))
    config["task"] = task
    config["dataset_kwargs"] = {"data_files": {"test": str(Path(split_file).resolve())}}
    config["generation_kwargs"]["max_gen_toks"] = generation_bound(split_file)
    return config


def write_task_yaml(task: str, split_file: Path, out_path: Path) -> None:
    """The same task as a YAML file, for the lm_eval command line (--include_path)."""
    write_text(out_path, yaml.safe_dump(task_config(task, split_file), sort_keys=False))


def evaluate(model, tokenizer, task: str, split_file: Path, labels: list[str], batch_size: int, max_length: int = 2048) -> dict:
    """Accuracy of greedy generative classification on ``split_file``, with per-example rows.
    A tokenizer with a chat template is evaluated through it (experiment/prompts.py)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
    output = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task_config(task, split_file)],
        task_manager=TaskManager(include_defaults=False),
        bootstrap_iters=1000,
        log_samples=True,
        apply_chat_template=prompts.uses_chat(tokenizer),
        verbosity="WARNING",
    )
    result = output["results"][task]
    samples = [
        {
            "id": s["doc"]["id"],
            "label": s["target"],
            "prediction": s["filtered_resps"][0],
            "correct": bool(s["exact_match"]),
            "lenient_correct": lenient_correct(s["resps"][0][0], s["target"], labels),
        }
        for s in output["samples"][task]
    ]
    return {
        "accuracy": result[METRIC],
        "lenient_accuracy": sum(s["lenient_correct"] for s in samples) / len(samples),
        "chat_template": prompts.uses_chat(tokenizer),
        "stderr": result["exact_match_stderr,label"],
        "n": len(samples),
        "samples": sorted(samples, key=lambda s: s["id"]),
        "lm_eval": {"version": output.get("lm_eval_version"), "task_config": output["configs"][task]["generation_kwargs"]},
    }
