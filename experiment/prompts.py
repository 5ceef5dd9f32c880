"""The prompt format: the one place where a classification example becomes text.

Data preparation renders every example with ``render`` and stores the result in the JSONL
``prompt`` field; training and lm-evaluation-harness both read that field, so the prompts a
model is trained on and evaluated on cannot drift apart. The model must continue the prompt
with ``target(label)``: a space, the label, and a newline that ends generation.
"""

from __future__ import annotations

STOP = "\n"


def render(instruction: str, labels: list[str], text: str, context: str = "") -> str:
    """``context`` is neutral text placed before the input (the length-sweep analysis)."""
    lines = [instruction.strip(), "Options: " + ", ".join(labels)]
    if context:
        lines.append("Context: " + context.strip())
    lines += ["Input: " + text.strip(), "Answer:"]
    return "\n".join(lines)


def target(label: str) -> str:
    return " " + label + STOP

