"""LoRA (Hu et al., 2021) through ``peft.LoraConfig``.

Each targeted linear layer W gets a trainable low-rank update W + (alpha / r) * B A, with B
initialised to zero so an untrained adapter is the base model. Targets are stated here, not
left to peft's per-architecture default, so the parameter count is the same on every model
family: the query and value projections of every attention layer, as in the LoRA paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import LoraConfig, get_peft_model


@dataclass
class Config:
    r: int = 8
    """Rank of the update."""
    alpha: int = 16
    """Scale numerator: the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the LoRA input; zero keeps training deterministic on CPU."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 3e-3


def apply(model, config: Config):
    peft_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
    )
    return get_peft_model(model, peft_config)
