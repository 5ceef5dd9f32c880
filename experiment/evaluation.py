"""Evaluation through lm-evaluation-harness, in-process, on a model instance."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path

import yaml

import re

from experiment import prompts
from experiment.data import EVALS_DIR
from experiment.records import write_text

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


def _answer_pattern() -> re.Pattern:
    """The template's own regex (evals/_classification.yaml), so the lenient score reads the
    same line exact match does."""
    (regex,) = [f for f in yaml.safe_load(TEMPLATE.read_text())["filter_list"][0]["filter"] if f["function"] == "regex"]
    return re.compile(regex["regex_pattern"])


ANSWER = _answer_pattern()


def first_line(generation: str) -> str:
    """The first non-empty line, stripped: what the template's regex filter keeps."""
    match = ANSWER.search(generation)
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


class PromptTooLong(ValueError):
    """A prompt plus its answer does not fit the model's context; lm-eval would cut the prompt
    from the left (instruction, options and BOS first) instead of failing."""


def context_window(model, tokenizer) -> int:
    """The model's context length as lm-eval reads it (config, then tokenizer). Passed to lm-eval
    explicitly: its default, 2,048, cut the length sweep's 3,072-token prompts."""
    from lm_eval.models.utils import resolve_max_length

    return resolve_max_length(model.config, tokenizer)


def check_fits(tokenizer, split_file: Path, window: int) -> int:
    """The longest model input of ``split_file`` in tokens (the prompt as the model sees it,
    chat template included: experiment/prompts.py); raises PromptTooLong when it and the
    answer exceed ``window``."""
    texts = [json.loads(line)["prompt"] for line in Path(split_file).read_text().splitlines() if line.strip()]
    longest, bound = max(len(prompts.encode(tokenizer, text)) for text in texts), generation_bound(split_file)
    if longest + bound > window:
        raise PromptTooLong(f"{split_file}: a prompt of {longest} tokens plus {bound} to generate exceeds "
                            f"the model's context of {window} tokens; shorten the inputs (e.g. analyses.length_sweep.lengths)")
    return longest


@contextlib.contextmanager
def no_truncation():
    """Fail on lm-eval's left truncation, which it only logs: a backstop for prompts that
    grow after check_fits (e.g. a chat template applied inside lm-eval)."""
    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            if "truncat" in record.getMessage().lower():
                warnings.append(record.getMessage())

    handler, logger = Collect(level=logging.WARNING), logging.getLogger("lm_eval")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if warnings:
        raise PromptTooLong(f"lm-eval truncated prompts: {warnings[0]}")


def evaluate(model, tokenizer, task: str, split_file: Path, labels: list[str], batch_size: int) -> dict:
    """Accuracy of greedy generative classification on ``split_file``, with per-example rows.
    A tokenizer with a chat template is evaluated through it (experiment/prompts.py)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    window = context_window(model, tokenizer)
    longest = check_fits(tokenizer, split_file, window)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=window)
    with no_truncation():
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
        "lm_eval": {"version": output.get("lm_eval_version"), "task_config": output["configs"][task]["generation_kwargs"],
                    "max_length": window, "longest_prompt_tokens": longest},
    }
