"""Figures from the summary tables (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiment.records import atomic_path  # noqa: E402


def save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def grouped_bars(summary: pd.DataFrame, methods: list[str], path: Path) -> None:
    """Accuracy per task (one panel per model), one bar per method, error bars = sd over seeds."""
    models = sorted(summary["model"].unique())
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 3.6 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        block = summary[summary["model"] == model]
        tasks = sorted(block["task"].unique())
        present = [m for m in methods if m in set(block["method"])]
        width = 0.8 / max(1, len(present))
        for i, method in enumerate(present):
            rows = block[block["method"] == method].set_index("task").reindex(tasks)
            x = np.arange(len(tasks)) + (i - (len(present) - 1) / 2) * width
            ax.bar(x, rows["mean"], width, yerr=rows["sd"], capsize=3, label=method)
        ax.set_xticks(np.arange(len(tasks)), tasks, rotation=15, ha="right")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(model)
        ax.legend(fontsize=8, ncol=min(5, len(present)))
    save(fig, path)
