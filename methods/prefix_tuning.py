"""Prefix-Tuning (Li & Liang, 2021) through ``peft.PrefixTuningConfig``.

Every layer gets ``num_virtual_tokens`` trainable key/value vectors placed in front of the
input. They share the softmax with the input tokens, which is the competition Prefix-Tuning+
removes. peft sizes the prefix by the key/value heads, so grouped-query models train
``num_virtual_tokens * layers * 2 * kv_heads * head_dim`` parameters.

Prefix-Tuning is very sensitive to initialisation and learning rate (peft's
method_comparison: 0.416 with an activation-based init vs 0.186 with a random one on the same
task). ``init`` therefore offers, besides peft's random and zero inits, ``activations``: the
keys and values the frozen model itself computes for ``num_virtual_tokens`` tokens drawn from
its vocabulary (peft's ``initialize_kv_prefix_from_past_key_values``), so the prefix starts
at the scale of real keys and values. That is the default; the README says how it was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from peft import PrefixTuningConfig, get_peft_model, initialize_kv_prefix_from_past_key_values


@dataclass
class Config:
    num_virtual_tokens: int = 10
    """Prefix length p: key/value vectors per layer."""
    prefix_projection: bool = False
    """Reparameterise the prefix through a 2-layer MLP while training (Li & Liang's trick)."""
    encoder_hidden_size: int = 128
    """Hidden width of that MLP (used only with prefix_projection)."""
    init: Literal["activations", "random", "zero"] = "activations"
    """``activations``: the frozen model's own keys/values for random vocabulary tokens;
    ``random``: peft's default normal init; ``zero``: all-zero keys and values."""
    learning_rate: float = 3e-2


def apply(model, config: Config):
    if config.init == "activations" and config.prefix_projection:
        raise ValueError("prefix_tuning: init='activations' cannot be combined with prefix_projection=True")
    peft_config = PrefixTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=config.prefix_projection,
        encoder_hidden_size=config.encoder_hidden_size,
        init_weights="zero" if config.init == "zero" else None,
    )
    peft_model = get_peft_model(model, peft_config)
    if config.init == "activations":
        _init_from_activations(peft_model, config.num_virtual_tokens)
    return peft_model


@torch.no_grad()
def _init_from_activations(peft_model, num_tokens: int) -> None:
    base = peft_model.get_base_model()
    # Drawn from the global RNG, which the training loop seeds: the init is part of the run's seed.
    tokens = torch.randint(0, base.config.vocab_size, (1, num_tokens), device=base.device)
    with peft_model.disable_adapter():
        cache = base(input_ids=tokens, use_cache=True).past_key_values
    initialize_kv_prefix_from_past_key_values(peft_model, past_key_values=cache, num_virtual_tokens=num_tokens)
