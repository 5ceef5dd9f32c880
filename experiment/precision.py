"""Numerics and memory of training, the same for every method (profile keys under ``train``).

``precision``:

* ``fp32`` (default): train in the dtype the model was loaded in, which the local profiles
  load as float32.
* ``bf16-mixed``: the trainable parameters, hence their gradients and AdamW's moments, are
  float32 during training (master weights), and the forward runs under bf16 autocast. Pure
  bf16 lost most small updates: after 50 AdamW steps at 3e-5, 71% of full fine-tuning's bf16
  weights had not changed, while peft keeps LoRA's and Prefix-Tuning's parameters in float32
  anyway. After training each parameter returns to the dtype it had, so evaluating in the job
  equals evaluating the saved adapter.
* ``auto``: ``bf16-mixed`` where the device computes in bf16 natively (a CUDA GPU with bf16, a
  CPU with AVX512-BF16 or AMX), or where the model's weights are not float32; ``fp32``
  elsewhere. A CPU without bf16 instructions emulates it: on one (AVX512 only) a full
  fine-tuning forward and backward pass (10 x 160 tokens, one thread) took 44.5 s under bf16
  autocast against 12.2 s in float32, while on one with them bf16-mixed made a step 38%
  shorter. Records carry the precision that ran, never ``auto``.

``gradient_checkpointing``: recompute each layer's activations in the backward pass instead of
storing them (the base model's own ``gradient_checkpointing_enable``); same gradients, less
memory, about a third more compute; every method but Prefix-Tuning (checkpoint_activations).

``fits_or_explain`` refuses, before any step, a run whose weights, gradients and optimizer state
alone exceed the GPU (docs/paper_profile.md has the arithmetic), instead of an opaque
out-of-memory error halfway through the sweep.
"""

from __future__ import annotations

import contextlib

import torch

# What a run trains in, and what a profile may say (``auto`` resolves to one of the first).
TRAINING_PRECISIONS = ("fp32", "bf16-mixed")
PRECISIONS = (*TRAINING_PRECISIONS, "auto")
# Bytes per trainable parameter: float32 weight, gradient, and AdamW's two moments.
TRAINABLE_BYTES = 4 + 4 + 8


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic in hardware (else autocast emulates it, slowly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve(precision: str, model: torch.nn.Module) -> str:
    """The precision a run trains in: ``precision`` itself, or what ``auto`` means for this
    model on this device."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    # Frozen half-precision weights need autocast too: a float32 adapter on them would not run.
    half_weights = any(p.dtype != torch.float32 for p in model.parameters())
    return "bf16-mixed" if half_weights or native_bf16(next(model.parameters()).device) else "fp32"


def master_weights(params: list[torch.nn.Parameter], precision: str):
    """Make ``params`` float32 for training (bf16-mixed); returns the function that puts each
    back in its original dtype. Call before building the optimizer, so its state is float32."""
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"train.precision: {precision!r} is not one of {', '.join(TRAINING_PRECISIONS)} (resolve() first)")
    original = [p.dtype for p in params]
    if precision == "bf16-mixed":
        for p in params:
            p.data = p.data.float()

    def restore() -> None:
        for p, dtype in zip(params, original):
            p.data = p.data.to(dtype)
            p.grad = None

    return restore


def autocast(device: torch.device, precision: str):
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def checkpoint_activations(model: torch.nn.Module, enabled: bool) -> bool:
    """Gradient checkpointing on the transformers model inside ``model`` (a peft wrapper, or
    the model itself); non-reentrant, so frozen inputs need no requires_grad. Returns whether
    it is on. Not for peft's prompt-learning methods (Prefix-Tuning): the recomputed forward
    appends the prefix to the cache a second time. Checkpointing leaves the gradients as they
    are (tests/test_paper_profile.py), so a method trained without it differs only in memory."""
    prompt_learning = getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False)
    if not enabled or prompt_learning:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return True


def fits_or_explain(params: list[torch.nn.Parameter], model: torch.nn.Module, device: torch.device,
                    capacity: int | None = None) -> None:
    """Raise when the frozen weights plus ``TRAINABLE_BYTES`` per trainable parameter exceed the
    device's memory (``capacity``, bytes; the GPU's by default; CPUs are not checked)."""
    if capacity is None:
        if device.type != "cuda":
            return
        capacity = torch.cuda.get_device_properties(device).total_memory
    trainable = sum(p.numel() for p in params)
    trainable_ids = {id(p) for p in params}
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in trainable_ids)
    needed = frozen + TRAINABLE_BYTES * trainable
    if needed > capacity:
        gib = 2**30
        raise MemoryError(
            f"training needs {needed / gib:.0f} GiB before activations ({trainable / 1e9:.2f} B trainable parameters x "
            f"{TRAINABLE_BYTES} bytes in float32 weights, gradients and AdamW moments, plus {frozen / gib:.0f} GiB of frozen "
            f"weights) but the device has {capacity / gib:.0f} GiB: run this (model, method) on a larger GPU, or leave the "
            "method out of this profile (docs/paper_profile.md, 'Memory')")
