"""Per-example outcomes of a cell's runs, read from the evaluation records' samples.

A cell is (model, task, method). Its runs are scored on one shared test split, so the samples
line up into a seeds x examples matrix, which is what the estimators in
``experiment.statistics`` take. From the same samples: which label each run answered (for
macro-F1 and for spotting a run that answers one label to everything), and the majority-class
reference of the test split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLLAPSE_SHARE = 0.8
"""A run that gives one answer to more than this share of the test examples is flagged as
collapsed: at that point its accuracy mostly says how often that label occurs in the split."""


@dataclass(frozen=True)
class Cell:
    seeds: list
    ids: list[str]
    labels: list[str]
    correct: np.ndarray
    """[runs, examples] booleans, rows in seed order, columns in id order."""
    answers: np.ndarray
    """[runs, examples] the label each run answered, or its own answer where that is no label."""

    @property
    def accuracy(self) -> np.ndarray:
        """Per-run accuracy in points."""
        return self.correct.mean(axis=1) * 100

    def collapsed(self) -> np.ndarray:
        """Per run: does one answer cover more than COLLAPSE_SHARE of the test examples?"""
        return np.array([Counter(row).most_common(1)[0][1] > COLLAPSE_SHARE * len(row) for row in self.answers])

    def macro_f1(self) -> np.ndarray:
        """Per-run macro-F1 in points over the labels of the test split."""
        return np.array([macro_f1(self.labels, row) for row in self.answers]) * 100

    @property
    def majority_label(self) -> str:
        """The test split's most frequent label (ties: the first in sorted order)."""
        return sorted(Counter(self.labels).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def majority_reference(self) -> tuple[float, float]:
        """Accuracy and macro-F1 (points) of answering the majority label everywhere: what a
        collapsed classifier reaches without learning anything."""
        answers = [self.majority_label] * len(self.labels)
        accuracy = np.mean([a == g for a, g in zip(answers, self.labels)]) * 100
        return float(accuracy), macro_f1(self.labels, answers) * 100


def _answer(sample: dict, labels: dict[str, str]) -> str:
    """The label a sample's prediction names. A correct one names its gold label; an incorrect
    one is matched to a label case-insensitively (a wrong label is a false positive for that
    label in macro-F1); anything else stays as its own answer and is a miss for the gold label."""
    if sample["correct"]:
        return sample["label"]
    text = str(sample["prediction"]).strip()
    return labels.get(text.casefold(), text)


def cell(runs: pd.DataFrame) -> Cell:
    """The outcome matrix of one cell's successful runs (records with their ``samples``)."""
    runs = runs.sort_values("seed", na_position="first")
    by_id = [{s["id"]: s for s in samples} for samples in runs["samples"]]
    ids = sorted(by_id[0])
    if any(sorted(run) != ids for run in by_id):
        raise ValueError(f"runs of {runs.iloc[0]['model']}/{runs.iloc[0]['task']}/{runs.iloc[0]['method']} "
                         "were not scored on the same test examples")
    gold = [by_id[0][i]["label"] for i in ids]
    labels = {label.strip().casefold(): label for label in gold}
    return Cell(
        seeds=list(runs["seed"]),
        ids=ids,
        labels=gold,
        correct=np.array([[run[i]["correct"] for i in ids] for run in by_id], dtype=bool),
        answers=np.array([[_answer(run[i], labels) for i in ids] for run in by_id], dtype=object),
    )


def macro_f1(labels: list[str], answers) -> float:
    """Unweighted mean over the split's labels of F1 = 2 TP / (2 TP + FP + FN)."""
    gold, answered = np.asarray(labels, dtype=object), np.asarray(answers, dtype=object)
    scores = []
    for label in sorted(set(labels)):
        tp = np.sum((answered == label) & (gold == label))
        fp = np.sum((answered == label) & (gold != label))
        fn = np.sum((answered != label) & (gold == label))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))
