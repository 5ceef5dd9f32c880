"""The prompt format: the one place where a classification example becomes text and tokens.

Data preparation renders every example with ``render`` and stores the result in the JSONL
``prompt`` field. A chat or instruct model sees that prompt as the user turn of its own chat
template (``model_input``), exactly as lm-evaluation-harness renders it with
``apply_chat_template``; a model whose tokenizer has no chat template (a base model, or a
profile that switches it off: ``models.<name>.chat_template: false``) sees the plain prompt.
Training and evaluation both go through this module, so they cannot drift apart
(tests/test_prompts.py checks token for token against what lm-eval feeds ``generate``).

The model must continue its input with ``target``: the label, then the end of its turn (the
chat template's end-of-turn marker; for plain prompts a space before the label and the
tokenizer's EOS after it). Generation stops at EOS, and evaluation reads the first non-empty
line of what the model generates (evals/_classification.yaml).
"""

from __future__ import annotations

def render(instruction: str, labels: list[str], text: str, context: str = "") -> str:
    """``context`` is neutral text placed before the input (the length-sweep analysis)."""
    lines = [instruction.strip(), "Options: " + ", ".join(labels)]
    if context:
        lines.append("Context: " + context.strip())
    lines += ["Input: " + text.strip(), "Answer:"]
    return "\n".join(lines)


def uses_chat(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _turn(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def model_input(tokenizer, prompt: str) -> str:
    """The text the model is given for ``prompt``: its chat template's user turn followed by
    the start of the assistant's turn (lm-eval's ``HFLM.apply_chat_template``), or the prompt."""
    if not uses_chat(tokenizer):
        return prompt
    return tokenizer.apply_chat_template(_turn(prompt), tokenize=False, add_generation_prompt=True)


def target(tokenizer, prompt: str, label: str) -> str:
    """What the model should generate after ``model_input``: the label and the end of its turn.

    For a chat model it is read off the template itself (the whole conversation minus the
    generation prompt), so Llama-2's ``[/INST] label </s>`` and ChatML's ``label<|im_end|>``
    both come out right; trailing whitespace after the end-of-turn marker is never generated."""
    if not uses_chat(tokenizer):
        return " " + label + (tokenizer.eos_token or "\n")
    start = model_input(tokenizer, prompt)
    whole = tokenizer.apply_chat_template(_turn(prompt) + [{"role": "assistant", "content": label}], tokenize=False)
    if not whole.startswith(start):
        raise ValueError(f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: its chat template renders the answered "
                         "conversation with a different start than the generation prompt; set "
                         "models.<name>.chat_template: false in the profile to train on plain prompts")
    return whole[len(start):].rstrip()


def input_ids(tokenizer, text: str) -> list[int]:
    """Tokens of a model input as lm-eval's HFLM encodes a context: no special tokens added
    when the text already starts with the BOS token (chat templates write it themselves)."""
    bos = tokenizer.bos_token
    add_special = not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def encode(tokenizer, prompt: str) -> list[int]:
    """The tokens the model is given for ``prompt``, as training, evaluation and the probes see them."""
    return input_ids(tokenizer, model_input(tokenizer, prompt))
