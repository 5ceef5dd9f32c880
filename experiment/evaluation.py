"""Evaluation through lm-evaluation-harness, in-process, on a model instance."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from experiment.data import EVALS_DIR
from experiment.records import write_text

TEMPLATE = EVALS_DIR / "_classification.yaml"
METRIC = "exact_match,label"


def generation_bound(split_file: Path) -> int:
    """Tokens to generate at most: two more than the UTF-8 bytes of the longest label in the
    split, with its leading space. A token is at least one byte, so a generation cut there is
    longer than every label and cannot match; a matching one ends before it. The scores are the
    same as with any longer limit, and a model that never emits the newline costs less."""
    lines = Path(split_file).read_text().splitlines()
    return 2 + max(len((" " + json.loads(line)["label"]).encode()) for line in lines if line.strip())


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


def evaluate(model, tokenizer, task: str, split_file: Path, batch_size: int, max_length: int = 2048) -> dict:
    """Accuracy of greedy generative classification on ``split_file``, with per-example rows."""
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
        verbosity="WARNING",
    )
    result = output["results"][task]
    samples = [
        {
            "id": s["doc"]["id"],
            "label": s["target"],
            "prediction": s["filtered_resps"][0],
            "correct": bool(s["exact_match"]),
        }
        for s in output["samples"][task]
    ]
    return {
        "accuracy": result[METRIC],
        "stderr": result["exact_match_stderr,label"],
        "n": len(samples),
        "samples": sorted(samples, key=lambda s: s["id"]),
        "lm_eval": {"version": output.get("lm_eval_version"), "task_config": output["configs"][task]["generation_kwargs"]},
    }
