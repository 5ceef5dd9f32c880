"""Full fine-tuning: every weight of the model is trained (the paper's "Full FT" column).

The reference point for what a PEFT method gives up. Adapters saved by this method are whole
models, so expect a file the size of the model per run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    learning_rate: float = 1e-4


def apply(model, config: Config):
    model.requires_grad_(True)
    return model
