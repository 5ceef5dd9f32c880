"""Base models and their tokenizers, from a profile's model spec.

A spec (``config/*.yaml`` -> ``models.<name>``) is one of

* ``kind: tiny``: a randomly initialised decoder built from a config in code, with a
  byte-level tokenizer that needs no download. For CI and tests.
* ``kind: pretrained``: ``from_pretrained(path)``, where ``path`` is a hub id (paper
  profile, at the pinned ``revision``) or a local folder (the embedded default, converted from
  GGUF by the DAG; the paper rehearsal's tiny models). Both are the same call, so the hub path
  is tested on local folders.

Prompts go through the tokenizer's chat template when it has one, unless the spec says
``chat_template: false`` (a base model), which removes it here, once for every job.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

# The tiny models differ only in architecture; the shapes keep grouped-query attention.
TINY_SHAPES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]
# A ChatML-like template, so the tiny models (CI) go through the chat path the instruct
# models of the default and paper profiles take; "<eos>" ends every turn.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: 256 byte tokens plus pad/bos/eos, no merges, no download."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for byte_char in sorted(pre_tokenizers.ByteLevel.alphabet()):  # alphabet() order varies per call
        vocab[byte_char] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", chat_template=TINY_CHAT_TEMPLATE
    )


def tiny_model(architecture: str = "llama", seed: int = 0, **overrides) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    tokenizer = byte_tokenizer()
    config = AutoConfig.for_model(
        architecture,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{**TINY_SHAPES, **overrides},
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same tiny model in every job
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model, tokenizer


def load(spec: dict, device: str = "cpu") -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """The frozen base model (eval mode) and its tokenizer for a model spec."""
    kind = spec["kind"]  # other keys (sha256, requirement) are provenance, not loading options
    if kind == "tiny":
        model, tokenizer = tiny_model(spec.get("architecture", "llama"), **spec.get("overrides", {}))
    elif kind == "pretrained":
        dtype = getattr(torch, spec.get("dtype", "float32"))
        # The pinned hub commit; ignored for a local folder, which is the same call.
        revision = spec.get("revision")
        model = AutoModelForCausalLM.from_pretrained(spec["path"], dtype=dtype, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(spec["path"], revision=revision)
    else:
        raise ValueError(f"model spec: unknown kind {kind!r} (expected 'tiny' or 'pretrained')")
    if not spec.get("chat_template", True):
        tokenizer.chat_template = None  # a base model: plain prompts (experiment/prompts.py)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
