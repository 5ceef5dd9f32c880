"""Figures from the summary tables (matplotlib, PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiment.records import atomic_path  # noqa: E402


def save(fig, path: Path) -> None:
    """The PNG, with the legend labels of each panel in its metadata ("Series"), so that what
    a figure shows (e.g. one series per model) can be read back from the file (series())."""
    labels = [ax.get_legend_handles_labels()[1] for ax in fig.axes]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Series": json.dumps(labels)})
    plt.close(fig)


def series(path: Path) -> list[list[str]]:
    """The legend labels of each panel of a figure written by save()."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text["Series"])


def grouped_bars(summary: pd.DataFrame, methods: list[str], path: Path) -> None:
    """Accuracy per task (one panel per model), one bar per method. Error bars: the 95% interval
    where the summary has one (the main table's, over seeds and test examples), else the sd over
    seeds (the feature-map ablation); a black line marks the majority class where it is given."""
    models = sorted(summary["model"].unique())
    intervals = {"ci_low", "ci_high"} <= set(summary.columns)
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 3.6 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        block = summary[summary["model"] == model]
        tasks = sorted(block["task"].unique())
        present = [m for m in methods if m in set(block["method"])]
        width = 0.8 / max(1, len(present))
        for i, method in enumerate(present):
            rows = block[block["method"] == method].set_index("task").reindex(tasks)
            x = np.arange(len(tasks)) + (i - (len(present) - 1) / 2) * width
            error = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]] if intervals else rows["sd"]
            ax.bar(x, rows["mean"], width, yerr=error, capsize=3, label=method)
        if "majority_class" in block.columns:
            majority = block.groupby("task")["majority_class"].first().reindex(tasks)
            ax.hlines(majority, np.arange(len(tasks)) - 0.45, np.arange(len(tasks)) + 0.45, colors="black", label="majority class")
        ax.set_xticks(np.arange(len(tasks)), tasks, rotation=15, ha="right")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{model} (95% intervals over seeds and test examples)" if intervals else f"{model} (sd over seeds)")
        ax.legend(fontsize=8, ncol=min(6, len(present) + 1))
    save(fig, path)


def forest(paired: pd.DataFrame, margin: float, names: dict[str, str], path: Path) -> None:
    """Paired differences (reference minus each method) with their 95% intervals, one row per
    (comparison, task) and the task average in bold, one panel per model; the shaded band is
    the margin within which a difference counts as equivalent."""
    models = sorted(paired["model"].unique())
    heights = [len(paired[paired["model"] == m]) for m in models]
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 0.35 * sum(heights) + 1.2 * len(models)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, model in zip(axes[:, 0], models):
        block = paired[paired["model"] == model]
        block = block.assign(average=block["task"] == "average").sort_values(["method", "average", "task"])
        y = np.arange(len(block))[::-1]
        average = block["average"].to_numpy()
        ax.axvspan(-margin, margin, color="0.9", label=f"±{margin:g} points")
        ax.axvline(0, color="black", linewidth=0.8)
        for mask, style in ((~average, {"color": "tab:blue", "markersize": 4}), (average, {"color": "black", "markersize": 7})):
            rows = block[mask]
            error = [rows["difference"] - rows["ci_low"], rows["ci_high"] - rows["difference"]]
            ax.errorbar(rows["difference"], y[mask], xerr=error, fmt="o", capsize=3, **style)
        labels = [f"− {names.get(m, m)}: {t}" for m, t in zip(block["method"], block["task"])]
        ax.set_yticks(y, labels, fontsize=8)
        for tick, bold in zip(ax.get_yticklabels(), average):
            tick.set_fontweight("bold" if bold else "normal")
        ax.set_xlabel("paired difference in accuracy (points), 95% interval over seeds and test examples")
        ax.set_title(f"{model}: {names.get('prefix_tuning_plus', 'prefix_tuning_plus')} minus each method")
        ax.legend(fontsize=8, loc="lower right")
    save(fig, path)


def length_sweep(accuracy: pd.DataFrame, alpha: pd.DataFrame, path: Path) -> None:
    """Left: accuracy against added context length, one series per (model, method), mean ± sd
    over seeds. Then one panel per model: Prefix-Tuning's attention share on its prefix per
    layer against the same lengths (models differ in depth, so their layers are not pooled)."""
    models = sorted(accuracy["model"].unique())
    fig, axes = plt.subplots(1, 1 + len(models), figsize=(5.5 * (1 + len(models)), 4), squeeze=False)
    left = axes[0, 0]
    for (model, method), block in accuracy.groupby(["model", "method"]):
        stats = block.groupby("context_tokens")["accuracy"].agg(["mean", "std"]).reset_index()
        left.errorbar(stats["context_tokens"], stats["mean"] * 100, yerr=stats["std"].fillna(0) * 100, marker="o", capsize=3,
                      label=f"{model}: {method}")
    left.set_xlabel("neutral context before the input (tokens)")
    left.set_ylabel("test accuracy (%)")
    left.set_ylim(0, 100)
    left.legend(fontsize=8)
    for right, model in zip(axes[0, 1:], models):
        shares = alpha[alpha["model"] == model]
        if len(shares):
            layers = sorted(shares["layer"].unique())
            shown = layers[:: max(1, len(layers) // 6)]
            cmap = plt.get_cmap("viridis")
            for i, layer in enumerate(shown):
                stats = shares[shares["layer"] == layer].groupby("context_tokens")["share"].mean()
                right.plot(stats.index, stats.values, marker=".", color=cmap(i / max(1, len(shown) - 1)), label=f"layer {layer}")
            mean = shares.groupby("context_tokens")["share"].mean()
            right.plot(mean.index, mean.values, color="black", linewidth=2, label="mean over layers")
            right.legend(fontsize=7, ncol=2)
        right.set_xlabel("neutral context before the input (tokens)")
        right.set_ylabel("prefix attention share (alpha)")
        right.set_title(f"{model}: Prefix-Tuning's attention on the prefix")
    save(fig, path)


def pareto_front(points: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """Points not beaten by another that is both cheaper (or equal) and better."""
    ordered = points.sort_values([cost, value], ascending=[True, False])
    front, best = [], -np.inf
    for _, row in ordered.iterrows():
        if row[value] > best:
            front.append(row)
            best = row[value]
    return pd.DataFrame(front)


def cost_pareto(cost: pd.DataFrame, accuracy: pd.DataFrame, path: Path) -> None:
    """Mean accuracy over tasks against training step time and peak memory, with Pareto fronts,
    one series per model: each model's accuracy is paired with the cost measured for that model
    (``cost["model"]``), never with another model's, and models without a cost are left out."""
    if "model" not in cost:
        raise ValueError("cost table: no 'model' column saying which model the cost was measured for")
    mean_accuracy = accuracy.groupby(["model", "method"])["mean"].mean().rename("accuracy")
    joined = cost.set_index(["model", "method"]).join(mean_accuracy, how="inner").reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (column, label) in zip(axes, [("train_step_s_vs_base", "training step time / frozen base fwd+bwd"),
                                           ("peak_memory_mib", "peak training memory (MiB)")]):
        for model, block in joined.groupby("model"):
            points = ax.scatter(block[column], block["accuracy"], label=model)
            for _, row in block.iterrows():
                ax.annotate(row["method"], (row[column], row["accuracy"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
            front = pareto_front(block, column, "accuracy")
            ax.plot(front[column], front["accuracy"], linestyle="--", color=points.get_facecolor()[0], label=f"Pareto front ({model})")
        ax.set_xlabel(label)
        ax.set_ylabel("mean test accuracy over tasks (%)")
        ax.legend(fontsize=8)
    save(fig, path)


def attention_maps(maps: dict, layer: int, path: Path) -> None:
    """One heat map per model; Prefix-Tuning's prefix columns sit left of the dashed line."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4), squeeze=False)
    for ax, (name, (matrix, prefix)) in zip(axes[0], maps.items()):
        ax.imshow(np.log10(matrix + 1e-6), cmap="magma", vmin=-4, vmax=0, aspect="auto", interpolation="nearest")
        if prefix:
            ax.axvline(prefix - 0.5, color="cyan", linestyle="--", linewidth=1)
            ax.set_title(f"{name} (prefix: first {prefix} keys)")
        else:
            ax.set_title(name)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    fig.suptitle(f"layer {layer}, head-averaged attention (log10)")
    save(fig, path)


def expressiveness(spectra: pd.DataFrame, path: Path, top: int = 32) -> None:
    """Normalised eigenvalue spectra of the added vectors, one panel per layer (log scale)."""
    layers = sorted(spectra["layer"].unique())
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.6), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for method, block in spectra[(spectra["layer"] == layer) & (spectra["rank"] <= top)].groupby("method"):
            ax.semilogy(block["rank"], block["eigenvalue"].clip(lower=1e-12), marker=".", label=method)
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("eigenvalue rank")
        ax.set_ylabel("eigenvalue / sum")
        ax.legend(fontsize=8)
    save(fig, path)


def iid_ood(points: pd.DataFrame, path: Path) -> None:
    """Accuracy on the training task against accuracy on the unseen task, one point per method
    (mean ± sd over seeds), with the Pareto front of the means (higher is better on both)."""
    means = points.groupby("method").agg(iid=("iid", "mean"), ood=("ood", "mean"),
                                         iid_sd=("iid", "std"), ood_sd=("ood", "std")).reset_index()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    for _, row in means.iterrows():
        ax.errorbar(row["iid"], row["ood"], xerr=0 if pd.isna(row["iid_sd"]) else row["iid_sd"],
                    yerr=0 if pd.isna(row["ood_sd"]) else row["ood_sd"], marker="o", capsize=3, label=row["method"])
    front = pareto_front(means.assign(neg_iid=-means["iid"]), "neg_iid", "ood").sort_values("iid")
    ax.plot(front["iid"], front["ood"], linestyle="--", color="grey", label="Pareto front")
    first = points.iloc[0]
    ax.set_xlabel(f"IID: accuracy on {first['iid_task']} (%)")
    ax.set_ylabel(f"OOD: accuracy on {first['ood_task']} (%)")
    ax.legend(fontsize=8)
    save(fig, path)
