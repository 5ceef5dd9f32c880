"""Evaluation through lm-evaluation-harness, in-process, on a model instance."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
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


class PromptTooLong(ValueError):
    """A prompt plus its answer does not fit the model's context; lm-eval would cut the prompt
    from the left (instruction, options and BOS first) instead of failing."""


def context_window(model, tokenizer) -> int:
    """The model's context length as lm-eval reads it (config, then tokenizer). Passed to lm-eval
    explicitly: its default, 2,048, cut the length sweep's 3,072-token prompts."""
    from lm_eval.models.utils import resolve_max_length

    return resolve_max_length(model.config, tokenizer)


def check_fits(tokenizer, split_file: Path, window: int) -> int:
    """The longest prompt of ``split_file`` in tokens, tokenised as lm-eval does; raises
    PromptTooLong when it and the answer exceed ``window``."""
    prompts = [json.loads(line)["prompt"] for line in Path(split_file).read_text().splitlines() if line.strip()]
    longest = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
    if longest + generation_bound(split_file) > window:
        raise PromptTooLong(f"{split_file}: a prompt of {longest} tokens plus {generation_bound(split_file)} to generate exceeds "
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


def evaluate(model, tokenizer, task: str, split_file: Path, batch_size: int) -> dict:
    """Accuracy of greedy generative classification on ``split_file``, with per-example rows."""
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
        "lm_eval": {"version": output.get("lm_eval_version"), "task_config": output["configs"][task]["generation_kwargs"],
                    "max_length": window, "longest_prompt_tokens": longest},
    }
