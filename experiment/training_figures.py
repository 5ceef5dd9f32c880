"""Figures that show the protocol held: every method learned its shots (loss curves), and
its learning rate was chosen inside the grid (dev accuracy against learning rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiment import sweep
from experiment.figures import plt, save


def loss_curves(records: list[dict]) -> pd.DataFrame:
    """One row per (model, method, task, seed, step) of the kept runs. A run that stopped
    early is carried at its last loss to the longest run's length, so the median over seeds
    at a step does not drop the runs that had already learned."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("losses")]
    longest = max((len(r["losses"]) for r in ok), default=0)
    rows = []
    for r in ok:
        padded = r["losses"] + [r["losses"][-1]] * (longest - len(r["losses"]))
        rows += [{"model": r["model"], "method": r["method"], "task": r["task"], "seed": r["seed"], "step": step + 1,
                  "loss": loss, "stopped": step >= len(r["losses"])} for step, loss in enumerate(padded)]
    return pd.DataFrame(rows)


def plot_loss_curves(curves: pd.DataFrame, target_loss: float, path: Path) -> None:
    """Median training loss over seeds per step, one line per method, one panel per (model, task)."""
    panels = sorted(curves.groupby(["model", "task"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (model, task) in zip(axes[0], panels):
        block = curves[(curves["model"] == model) & (curves["task"] == task)]
        for method, lines in block.groupby("method"):
            median = lines.groupby("step")["loss"].median()
            ax.semilogy(median.index, median.clip(lower=1e-4), label=method)
        ax.axhline(target_loss, color="grey", linestyle=":", linewidth=1, label="target loss")
        ax.set_title(f"{task}\n({model})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("answer loss (median over seeds)")
        ax.legend(fontsize=7)
    save(fig, path)


def sweep_points(choices: list[dict]) -> pd.DataFrame:
    """One row per candidate learning rate of every (model, method, task) sweep."""
    rows = []
    for choice in choices:
        for rate, candidate in choice["candidates"].items():
            rows.append({"model": choice["model"], "method": choice["method"], "task": choice["task"],
                         "learning_rate": float(rate), "dev_accuracy": candidate["dev_accuracy"],
                         "chosen": float(rate) == choice["learning_rate"], "bracket": choice.get("bracket", ""),
                         "diverged": sweep.diverged(candidate)})
    return pd.DataFrame(rows)


def plot_sweeps(points: pd.DataFrame, path: Path) -> None:
    """Dev accuracy against learning rate (log scale), one line per method, one panel per
    (model, task); the chosen rate is circled and diverged candidates are crosses at 0."""
    panels = sorted(points.groupby(["model", "task"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (model, task) in zip(axes[0], panels):
        block = points[(points["model"] == model) & (points["task"] == task)]
        for method, rows in block.groupby("method"):
            rows = rows.sort_values("learning_rate")
            accuracy = rows["dev_accuracy"].astype(float).fillna(0) * 100
            line, = ax.semilogx(rows["learning_rate"], np.where(rows["diverged"], np.nan, accuracy), marker="o", label=method)
            gone = rows["diverged"].to_numpy()
            ax.scatter(rows["learning_rate"][gone], accuracy[gone], marker="x", color=line.get_color())
            chosen = rows[rows["chosen"]]
            ax.scatter(chosen["learning_rate"], chosen["dev_accuracy"].astype(float) * 100, s=160, facecolors="none",
                       edgecolors=line.get_color())
        ax.set_title(f"{task}\n({model})", fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("dev accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.legend(fontsize=7)
    save(fig, path)
