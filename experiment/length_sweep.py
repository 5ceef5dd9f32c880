"""The paper's core claim, tested: does accuracy survive a longer input, and how much attention
does Prefix-Tuning's prefix keep as the input grows?

Neutral context (evals/_neutral_context.txt) of increasing token length is placed before each
test input (``prompts.render(..., context=...)``). For Prefix-Tuning we also measure alpha, the
share of softmax attention that the query producing the answer gives to the prefix, per layer
(paper §1.2b: o = (1 - alpha) * Attn(x) + sum_j alpha_j v'_j).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from experiment import evaluation, prompts
from experiment.data import EVALS_DIR, load_split

CONTEXT_FILE = EVALS_DIR / "_neutral_context.txt"


def neutral_context(tokenizer, length: int) -> str:
    """The first ``length`` tokens of the neutral text, repeated as needed."""
    if length == 0:
        return ""
    ids = tokenizer(CONTEXT_FILE.read_text().strip(), add_special_tokens=False)["input_ids"]
    ids = (ids * (length // len(ids) + 1))[:length]
    return tokenizer.decode(ids)


def with_context(rows: list[dict], meta: dict, context: str) -> list[dict]:
    return [{**row, "prompt": prompts.render(meta["instruction"], meta["labels"], row["text"], context)} for row in rows]


def accuracy_by_length(model, tokenizer, task: str, task_dir: Path, meta: dict, lengths: list[int], examples: int, batch_size: int,
                       windows: dict | None = None) -> dict[int, float]:
    """Accuracy per added context length; ``windows`` receives, per length, the longest prompt
    in tokens and the context window lm-eval scored it in (the longest must fit whole)."""
    rows = load_split(Path(task_dir) / "test.jsonl", meta["labels"])[:examples]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            split = Path(tmp) / f"test_{length}.jsonl"
            lines = [json.dumps({k: r[k] for k in ("id", "text", "label", "prompt")}) for r in with_context(rows, meta, neutral_context(tokenizer, length))]
            split.write_text("\n".join(lines) + "\n")
            result = evaluation.evaluate(model, tokenizer, task, split, meta["labels"], batch_size)
            results[length] = result["accuracy"]
            if windows is not None:
                windows[length] = {k: result["lm_eval"][k] for k in ("longest_prompt_tokens", "max_length")}
    return results


@torch.no_grad()
def prefix_attention_share(peft_model, tokenizer, prompts_text: list[str]) -> list[float]:
    """Mean over prompts and heads of the attention the last prompt token pays to the prefix,
    one value per layer. Needs eager attention to read the softmax weights."""
    base = peft_model.get_base_model()
    previous = base.config._attn_implementation
    base.set_attn_implementation("eager")
    num_virtual = peft_model.peft_config[peft_model.active_adapter].num_virtual_tokens
    shares = []
    try:
        for text in prompts_text:
            ids = torch.tensor([prompts.encode(tokenizer, text)], device=base.device)
            out = peft_model(input_ids=ids, output_attentions=True)
            # each layer: [1, heads, queries, prefix + keys]; the last query produces the answer
            shares.append([float(layer[0, :, -1, :num_virtual].sum(-1).mean()) for layer in out.attentions])
    finally:
        base.set_attn_implementation(previous)
    return torch.tensor(shares).mean(0).tolist()
