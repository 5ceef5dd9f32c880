"""Looking inside trained models: attention maps (paper Fig. 1) and the spectrum of what
Prefix-Tuning and Prefix-Tuning+ add to the attention output (paper Fig. 3).

Both methods can be read as adding a query-dependent vector to each head's output:
Prefix-Tuning's is (attention output with the prefix) - (without it); Prefix-Tuning+'s is
phi(q_i)^T M. A richer method spreads these vectors over more directions, which shows as a
slower decay of the eigenvalues of their covariance.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from experiment import prompts


def attention_layer(model, layer: int):
    """The self-attention module of ``layer`` (works through peft wrappers)."""
    found = [m for m in model.modules() if hasattr(m, "o_proj") and getattr(m, "layer_idx", None) == layer]
    if not found:
        raise ValueError(f"no attention layer {layer}")
    return found[0]


@contextlib.contextmanager
def eager_attention(model):
    """Softmax weights are only materialised by eager attention."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    previous = inner.config._attn_implementation
    inner.set_attn_implementation("eager" if not previous.startswith("prefix_memory_") else "prefix_memory_eager")
    try:
        yield
    finally:
        inner.set_attn_implementation(previous)


@torch.no_grad()
def attention_map(model, tokenizer, prompt: str, layer: int) -> np.ndarray:
    """Head-averaged attention weights of ``layer`` for one prompt: [queries, keys]. For
    Prefix-Tuning the first keys are the virtual tokens."""
    ids = torch.tensor([prompts.encode(tokenizer, prompt)], device=next(model.parameters()).device)
    with eager_attention(model):
        attentions = model(input_ids=ids, output_attentions=True).attentions
    return attentions[layer][0].mean(0).float().cpu().numpy()


@contextlib.contextmanager
def _capture_o_proj_input(model, layer: int, sink: list):
    handle = attention_layer(model, layer).o_proj.register_forward_pre_hook(lambda _m, args: sink.append(args[0][0].float().cpu()))
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def added_vectors(model, method: str, tokenizer, texts: list[str], layer: int) -> torch.Tensor:
    """The vector each method adds to the concatenated head outputs at ``layer``, one row per
    token of every prompt in ``texts``: [tokens, heads * head_dim]."""
    device = next(model.parameters()).device
    rows = []
    for prompt in texts:
        ids = torch.tensor([prompts.encode(tokenizer, prompt)], device=device)
        if method == "prefix_tuning_plus":
            sink = []
            memory = attention_layer(model, layer).prefix_memory
            handle = memory.register_forward_hook(lambda _m, _i, out: sink.append(out[0].flatten(-2).float().cpu()))
            try:
                model(input_ids=ids)
            finally:
                handle.remove()
            rows.append(sink[0])
        elif method == "prefix_tuning":
            with_prefix, without = [], []
            with _capture_o_proj_input(model, layer, with_prefix):
                model(input_ids=ids)
            with _capture_o_proj_input(model, layer, without), model.disable_adapter():
                model(input_ids=ids)
            rows.append(with_prefix[0] - without[0])
        else:
            raise ValueError(f"added_vectors: {method!r} adds no attention-output vector")
    return torch.cat(rows)


def normalised_spectrum(vectors: torch.Tensor) -> np.ndarray:
    """Eigenvalues of the covariance of ``vectors``, largest first, divided by their sum."""
    centred = vectors - vectors.mean(0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / max(1, len(vectors) - 1)).flip(0).clamp(min=0)
    return (eigenvalues / eigenvalues.sum().clamp(min=1e-30)).numpy()
