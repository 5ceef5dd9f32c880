"""One training loop for every method: plain PyTorch, AdamW, loss on the answer tokens only.

Stopping rule (the same for every method): train until the shots are learned, i.e. the mean
answer loss over the last epoch of steps (every shot seen once) is at most ``target_loss``,
and at least ``min_steps`` steps have run; stop at ``max_steps`` otherwise, and record the
run as not converged. A run whose loss climbs past ``diverge_factor`` times its first loss
stops there, recorded as diverged (and not converged): past the stable range, its remaining
steps would only cost time, and the learning-rate sweep needs nothing more from it. A few-shot set is tiny (one example per class), so "learned" is
reachable for every method at a sensible learning rate; a fixed small step budget would
instead score each method mid-transient, at whatever point its learning rate had got it to.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from experiment import precision, prompts


@dataclass
class TrainConfig:
    max_steps: int = 60  # the cap: a run that reaches it unconverged is flagged
    target_loss: float = 0.05  # mean answer-token cross-entropy that counts as learned
    min_steps: int = 1
    diverge_factor: float = 4.0  # a loss above this multiple of the first one is divergence
    batch_size: int = 8
    max_length: int = 512
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    precision: str = "fp32"  # experiment/precision.py
    gradient_checkpointing: bool = False


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


class OutOfMemory(RuntimeError):
    """A batch did not fit; the message says which settings to lower."""


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err) or "out of memory" in str(err)


def seed_everything(seed: int) -> None:
    """The settings that make a CPU run bit-identical for the same seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def encode(tokenizer, examples: list[dict], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example; prompt tokens are masked with -100.

    Prompt and answer are tokenised separately, exactly as the model sees them at evaluation
    time (lm-evaluation-harness tokenises the prompt, the model generates the answer)."""
    encoded = []
    for ex in examples:
        prompt = prompts.encode(tokenizer, ex["prompt"])
        answer = tokenizer(prompts.target(tokenizer, ex["prompt"], ex["label"]), add_special_tokens=False)["input_ids"]
        ids = (prompt + answer)[-max_length:]  # keep the answer; cut the start of long inputs
        labels = ([-100] * len(prompt) + answer)[-max_length:]
        encoded.append((ids, labels))
    return encoded


def collate(batch, pad_id: int):
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def answer_loss(model, input_ids, labels, mask):
    """Mean cross-entropy over the answer tokens.

    Only the positions that predict an answer token go through the LM head (a vocabulary of
    49k makes it a fifth of the model's compute); the rows are right-padded, so that is the
    span between the earliest and the latest answer token of the batch."""
    answer_positions = (labels != -100).any(dim=0).nonzero().squeeze(-1)
    first, last = int(answer_positions[0]), int(answer_positions[-1])
    keep = torch.arange(first - 1, last, device=input_ids.device)  # position t predicts token t + 1
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep, use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels[:, keep + 1].flatten(), ignore_index=-100)


def make_optimizer(params: list, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW, fused on CPU and CUDA: one kernel over all tensors instead of a Python loop, which
    made full fine-tuning's optimizer step (272 tensors, 135M parameters) 1.1 s -> 0.3 s here."""
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=fused)


def converged(losses: list[float], config: TrainConfig, steps_per_epoch: int) -> bool:
    """The stopping rule: the last epoch's mean loss is at most the target."""
    window = losses[-steps_per_epoch:]
    return len(losses) >= max(config.min_steps, steps_per_epoch) and sum(window) / len(window) <= config.target_loss


def train(model, tokenizer, examples: list[dict], config: TrainConfig, learning_rate: float, seed: int) -> dict:
    """Train the trainable parameters of ``model`` in place until the stopping rule holds or
    ``max_steps`` is reached; returns the loss curve, whether it converged, and timing."""
    encoded = encode(tokenizer, examples, config.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    device = next(model.parameters()).device
    precision.fits_or_explain(params, model, device)
    restore_dtypes = precision.master_weights(params, config.precision)  # before the optimizer: its state follows
    precision.checkpoint_activations(model, config.gradient_checkpointing)
    optimizer = make_optimizer(params, learning_rate, config.weight_decay)
    batch_size = min(config.batch_size, len(encoded))
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    order_rng = random.Random(seed)
    order: list[int] = []
    losses, tokens = [], 0
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(config.max_steps), desc="train", mininterval=10, leave=False):
        batch = []
        while len(batch) < batch_size:
            if not order:
                order = list(range(len(encoded)))
                order_rng.shuffle(order)
            batch.append(encoded[order.pop()])
        input_ids, labels, mask = (t.to(device) for t in collate(batch, tokenizer.pad_token_id))
        try:
            with precision.autocast(device, config.precision):
                loss = answer_loss(model, input_ids, labels, mask)
        except RuntimeError as err:
            if not _is_out_of_memory(err):
                raise
            raise OutOfMemory(
                f"a training batch of {input_ids.shape[0]} x {input_ids.shape[1]} tokens does not fit in {device} memory; "
                f"lower train.batch_size ({config.batch_size}) or train.max_length ({config.max_length}) in the profile"
            ) from None
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"loss is {loss.item()} at step {step}; lower the learning rate ({learning_rate})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        if not math.isfinite(norm.item()):
            raise TrainingDiverged(f"gradient norm is {norm.item()} at step {step}; lower the learning rate ({learning_rate})")
        optimizer.step()
        losses.append(round(loss.item(), 6))
        tokens += int(mask.sum())
        if converged(losses, config, steps_per_epoch) or losses[-1] > config.diverge_factor * losses[0]:
            break
    # The last step's gradients would otherwise live on with the model (a second copy of
    # every trainable weight: for full fine-tuning, the size of the model).
    optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    restore_dtypes()
    model.eval()
    return {"losses": losses, "steps": len(losses), "converged": converged(losses, config, steps_per_epoch),
            "diverged": losses[-1] > config.diverge_factor * losses[0],
            "train_seconds": round(seconds, 3), "train_tokens": tokens, "tokens_per_second": round(tokens / seconds, 1)}
