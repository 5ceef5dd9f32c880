"""Generic save/load of any method's trained state.

An adapter folder holds ``adapter_model.safetensors`` (the method's trainable parameters,
by name) and ``adapter_config.json`` (method name, its Config, and the base model it was
trained on). Loading applies the method to a fresh base model and loads the weights, so any
module in ``methods/`` round-trips without code of its own.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import methods
from experiment.records import atomic_path, read_json, write_json

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Clones: safetensors refuses tensors that share storage (tied embeddings in full fine-tuning).
    return {name: p.detach().to("cpu").clone().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def count_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keeps_weights(method: str, config: dict) -> bool:
    """Whether a run of ``method`` keeps its trained weights under a profile: full fine-tuning's
    are the whole model, kept only with keep_full_finetune_weights (records and scores always are)."""
    return method != "full_finetune" or config.get("keep_full_finetune_weights", False)


def save(model: torch.nn.Module, folder: Path, method: str, config, base_model: str, weights: bool = True) -> None:
    """Without ``weights`` only the config is written, saying so: full fine-tuning's adapter is
    the whole model (13 GB for Llama-2-7B in bf16), kept only where the profile asks."""
    folder = Path(folder)
    if weights:
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(trainable_state(model), str(tmp))
    # The config is written last: an adapter folder without it is incomplete.
    write_json(folder / CONFIG, {"method": method, "config": methods.config_dict(config), "base_model": base_model, "weights_kept": weights})


def load(base: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """Apply the saved method to ``base`` (a fresh base model) and load its weights."""
    folder = Path(folder)
    meta = read_json(folder / CONFIG)
    if not meta.get("weights_kept", True):
        raise FileNotFoundError(f"{folder}: the {meta['method']} weights of this run were not kept "
                                "(profile key keep_full_finetune_weights: false); its records and scores were")
    config = methods.make_config(meta["method"], meta["config"])
    weights = load_file(str(folder / WEIGHTS), device=str(next(base.parameters()).device))
    return restore(base, meta["method"], config, weights, where=folder / WEIGHTS)


def restore(base: torch.nn.Module, method: str, config, weights: dict[str, torch.Tensor], where: object = "weights") -> torch.nn.Module:
    """Apply ``method`` to ``base`` and load its trained weights (``trainable_state``'s form)."""
    # The init of the method is about to be overwritten; keep it from consuming the caller's RNG.
    with torch.random.fork_rng():
        model = methods.get(method).apply(base, config)
    expected = set(trainable_state(model))
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights))[:5], sorted(set(weights) - expected)[:5]
        raise ValueError(f"{where}: does not fit method {method!r} (missing {missing}, unexpected {extra})")
    model.load_state_dict(weights, strict=False)
    return model.eval()
