"""Prefix-Tuning+ (v3: PrefixMemory-Tuning), arXiv 2506.13674.

Prefix-Tuning puts trainable key/value vectors in front of the input, so the prefix and the
input share one softmax and compete for attention weight. Prefix-Tuning+ moves the prefix
out of the softmax. For every attention head h of every adapted layer, the output at query
position i becomes

    o_i = Attn(x)_i + phi(q_i)^T M_h                  (v1 Eq. 8 / v3 Eq. 7)

where Attn(x)_i is the unchanged softmax attention over the input, phi a feature map applied
to the head's query, and M_h a trainable memory of shape (d_phi, d_head). The sum is formed
per head, before the heads are concatenated and projected by o_proj. Nothing enters the
softmax, so the added term at position i depends on the query at i and on nothing else:
neither input length nor earlier tokens can dilute it.

Choices the paper leaves open (docs/prefix_tuning_plus.md):

* query: ``pre_rope`` (default) feeds phi the output of q_proj, i.e. ``q_i = W_Q x_i``
  exactly as the paper writes it; the term is then a function of token content only.
  ``post_rope`` feeds the query as the attention kernel sees it, after rotary embedding,
  which is the query that meets the prefix keys in Prefix-Tuning.
* M starts at zero, so an untrained adapter is exactly the base model.
* One M per head (the equation is per head), in every layer unless ``layers`` says otherwise.

Mechanism: the term is added inside transformers' attention interface. ``apply`` switches
the model to the attention function ``prefix_memory_<backend>``, which calls the stock
``sdpa``/``eager`` kernel and adds the memory term of the calling layer. The model stays an
ordinary ``PreTrainedModel``, so ``generate`` with a KV cache and lm-evaluation-harness work
unchanged. For the pre-RoPE query, the layer's q_proj becomes a ``QueryTap``: the same
nn.Linear (weights, names, state dict) that also keeps its output for the attention function.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


@dataclass
class Config:
    feature_map: Literal["elu", "gelu", "mlp"] = "elu"
    """phi: ``elu`` (the paper's default, elu(x) not elu(x)+1), ``gelu`` (paper Table 2), or
    ``mlp``, the paper's Remark 1 kernel phi(q) = ReLU(W q + b) with its own W, b per head."""
    query: Literal["pre_rope", "post_rope"] = "pre_rope"
    """Which query phi sees: q_proj's output (the paper's q_i = W_Q x_i) or the rotated one."""
    mlp_width: int = 64
    """d_phi for the ``mlp`` kernel (rows of M). ``elu``/``gelu`` keep d_phi = d_head."""
    init: Literal["zero", "normal"] = "zero"
    """``zero``: M = 0, an untrained adapter is the base model. ``normal``: N(0, init_std^2)."""
    init_std: float = 0.02
    layers: list[int] | None = None
    """Layer indices that get a memory; None means every layer."""
    learning_rate: float = 5e-4
    """Default for AdamW, the middle of the learning-rate sweep's first grid (0.5x, 1x, 2x).
    It was 1e-3 until every default-profile sweep showed 1e-3 diverging or not learning the
    shots on 3 of 4 tasks (chat-template prompts, results/default/sweep at 16cdfa6): a grid
    centred there spent its top rate on a run that could never be chosen, while the other
    methods' grids are centred on rates their sweeps choose."""


class PrefixMemory(nn.Module):
    """The memories M_h of all heads of one attention layer, and the feature map phi."""

    def __init__(self, num_heads: int, head_dim: int, config: Config, dtype: torch.dtype):
        super().__init__()
        self.feature_map_name = config.feature_map
        self.query_source = config.query
        feature_dim = config.mlp_width if config.feature_map == "mlp" else head_dim
        # M: one (d_phi x d_head) matrix per head, stacked so all heads are one einsum.
        self.memory = nn.Parameter(torch.zeros(num_heads, feature_dim, head_dim, dtype=dtype))
        if config.init == "normal":
            nn.init.normal_(self.memory, std=config.init_std)
        if config.feature_map == "mlp":
            self.kernel_weight = nn.Parameter(torch.empty(num_heads, head_dim, feature_dim, dtype=dtype))
            self.kernel_bias = nn.Parameter(torch.zeros(num_heads, feature_dim, dtype=dtype))
            # Same scale as nn.Linear's default, per head.
            bound = 1.0 / math.sqrt(head_dim)
            nn.init.uniform_(self.kernel_weight, -bound, bound)

    def phi(self, rows: torch.Tensor) -> torch.Tensor:
        """The feature map on queries laid out heads-first: [H, N, d_head] -> [H, N, d_phi]."""
        if self.feature_map_name == "elu":
            return F.elu(rows)
        if self.feature_map_name == "gelu":
            return F.gelu(rows)
        return F.relu(torch.baddbmm(self.kernel_bias[:, None, :], rows, self.kernel_weight))

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """phi(q_i)^T M_h for every position i and head h: [B, T, H, d_head] -> [B, T, H, d_head].

        One batched matmul with the heads as the batch: [H, B*T, d_phi] @ [H, d_phi, d_head] (and
        the MLP kernel's [H, B*T, d_head] @ [H, d_head, d_phi] before it). The pre-RoPE query is
        q_proj's output viewed per head, so these reshapes are views and nothing is copied: an
        einsum or a broadcasting matmul copied phi(q) or M on every call, and at decode every
        extra operator costs time (docs/cost.md, "What the decode overhead is made of")."""
        rows = query.flatten(0, 1).transpose(0, 1)
        return torch.bmm(self.phi(rows), self.memory).transpose(0, 1).view(query.shape[:-1] + (-1,))


def _attention_with_memory(backend: str):
    def attention(module, query, key, value, attention_mask, **kwargs):
        if backend == "eager":
            # Eager attention is defined per architecture, next to the attention class.
            kernel = sys.modules[type(module).__module__].eager_attention_forward
        else:
            kernel = ALL_ATTENTION_FUNCTIONS[backend]
        output, weights = kernel(module, query, key, value, attention_mask, **kwargs)  # Attn(x): [B, T, H, d]
        memory = getattr(module, "prefix_memory", None)
        if memory is None:
            return output, weights
        if memory.query_source == "pre_rope":
            tapped, module.q_proj.query = module.q_proj.query, None  # [B, T, H*d], consumed once
            query = tapped.view(output.shape)
        else:
            query = query.transpose(1, 2)  # rotated: [B, H, T, d] -> [B, T, H, d]
        return output + memory(query), weights  # o_i = Attn(x)_i + phi(q_i)^T M_h

    return attention


BACKENDS = ("sdpa", "eager")
ATTENTION_PREFIX = "prefix_memory_"
for _backend in BACKENDS:
    AttentionInterface.register(ATTENTION_PREFIX + _backend, _attention_with_memory(_backend))
    AttentionMaskInterface.register(ATTENTION_PREFIX + _backend, ALL_MASK_ATTENTION_FUNCTIONS[_backend])


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """Self-attention modules that use transformers' attention interface (Llama, Qwen2, Mistral, ...)."""
    return [m for m in model.modules() if hasattr(m, "q_proj") and hasattr(m, "layer_idx")]


def apply(model: nn.Module, config: Config) -> nn.Module:
    model.requires_grad_(False)
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layers with q_proj/layer_idx")
    wanted = set(range(len(layers))) if config.layers is None else set(config.layers)
    unknown = wanted - {m.layer_idx for m in layers}
    if unknown:
        raise ValueError(f"prefix_tuning_plus: layers {sorted(unknown)} do not exist (model has {len(layers)})")
    for attn in layers:
        if attn.layer_idx not in wanted:
            continue
        num_heads = attn.q_proj.out_features // attn.head_dim
        attn.prefix_memory = PrefixMemory(num_heads, attn.head_dim, config, attn.q_proj.weight.dtype)
        if config.query == "pre_rope":
            QueryTap.install(attn.q_proj)

    backend = model.config._attn_implementation
    if not backend.startswith(ATTENTION_PREFIX):
        if backend not in BACKENDS:
            raise ValueError(f"prefix_tuning_plus supports attention {BACKENDS}, the model uses {backend!r}")
        model.set_attn_implementation(ATTENTION_PREFIX + backend)
    return model


class QueryTap(nn.Linear):
    """q_proj that keeps its output, q_i = W_Q x_i before RoPE, for the layer's memory term.

    ``install`` swaps the class of the model's own nn.Linear, so weights, parameter names and
    the state dict stay the base model's. Not a forward hook: a module with hooks takes
    ``Module.__call__``'s slow path, and at decode every microsecond per layer shows (README,
    "Cost": before and after)."""

    query: torch.Tensor | None

    @classmethod
    def install(cls, linear: nn.Module) -> None:
        if type(linear) not in (nn.Linear, cls):
            raise TypeError(f"prefix_tuning_plus (query: pre_rope) needs q_proj to be a plain nn.Linear, "
                            f"found {type(linear).__name__}; use query: post_rope")
        linear.__class__ = cls
        linear.query = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.query = super().forward(x)
        return self.query
