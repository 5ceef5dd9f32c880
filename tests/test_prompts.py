"""The prompt format and the scoring rule: what the model is given, what it must answer, and
how its generation is read (through lm-eval's own filter and metric, from our template)."""

import json

import pytest
from lm_eval.api.task import ConfigurableTask

from experiment import evaluation, models, prompts, training

LABELS = ["Facts", "Dropped Facts", "Negation or Antonyms"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    split = tmp_path_factory.mktemp("split") / "test.jsonl"
    split.write_text(json.dumps({"id": "1", "text": "x", "label": "Facts", "prompt": "p"}) + "\n")
    return ConfigurableTask(config=evaluation.task_config("scoring", split))


def scored(task, generation: str) -> bool:
    """The template's filter, then its metric, as lm-eval applies them."""
    responses = [[generation]]
    for step in task._filters[0].filters:
        responses = step().apply(responses, [None])
    prediction, = responses
    assert isinstance(prediction, str)
    return bool(task.process_results(task.test_docs()[0], [prediction])["exact_match"])


@pytest.mark.parametrize("generation, correct", [
    ("Facts", True),
    ("\nFacts", True),  # a leading newline no longer empties the answer
    ("\n\n  Facts  \n", True),  # surrounding spaces and blank lines
    ("Facts\nbecause the translation changes a fact", True),  # text after the answer's line
    ("facts", True),  # case
    ("FACTS", True),
    ("Dropped Facts", False),  # a label that contains the right one is another label
    ("Fact", False),  # a prefix of the label is not the label
    ("The answer is Facts", False),  # exact match reads the whole first line
    ("", False),
    ("\n\n", False),
])
def test_prediction_is_the_first_non_empty_line(task, generation, correct):
    assert scored(task, generation) is correct
    assert (evaluation.first_line(generation).casefold() == "facts") is correct


@pytest.mark.parametrize("generation, correct", [
    ("The error is of type Facts.", True),
    ("facts", True),
    ("Dropped Facts", False),  # names another label; "Facts" inside it does not count
    ("Facts or Dropped Facts", False),  # names two labels
    ("I am not sure.", False),
    ("\nNegation or Antonyms", False),
    ("Let me think.\nFacts", False),  # only the first line is read
])
def test_lenient_score_needs_exactly_the_right_label_on_the_first_line(generation, correct):
    assert evaluation.lenient_correct(generation, "Facts", LABELS) is correct


def test_training_sees_the_tokens_evaluation_feeds_generate(tmp_path):
    """The chat-rendered prompt tokens of the training loop are, token for token, the context
    lm-eval passes to ``generate`` (the tiny tokenizer has a chat template, as instruct models do)."""
    model, tokenizer = models.tiny_model("llama")
    assert prompts.uses_chat(tokenizer)
    rows = [{"id": str(i), "text": text, "label": "pos", "prompt": prompts.render("Classify.", ["pos", "neg"], text)}
            for i, text in enumerate(["good film", "a much longer and duller film than the first one"])]
    split = tmp_path / "test.jsonl"
    split.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []
    generate = model.generate

    def recording_generate(input_ids, attention_mask, **kwargs):
        seen.extend(ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask))
        return generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    model.generate = recording_generate
    evaluation.evaluate(model, tokenizer, "tokens", split, ["pos", "neg"], batch_size=2)
    trained = [ids[: labels.index(next(t for t in labels if t != -100))]
               for ids, labels in training.encode(tokenizer, rows, max_length=512)]
    assert sorted(seen) == sorted(trained)
    # ... and the answer it learns is the label and the end of the assistant's turn.
    answer = [t for t in training.encode(tokenizer, rows[:1], 512)[0][1] if t != -100]
    assert tokenizer.decode(answer) == "pos" + tokenizer.eos_token


def test_a_base_model_profile_gets_plain_prompts():
    _, tokenizer = models.tiny_model("llama")
    tokenizer.chat_template = None  # what models.load does for `chat_template: false`
    assert prompts.model_input(tokenizer, "Q\nAnswer:") == "Q\nAnswer:"
    assert prompts.target(tokenizer, "Q\nAnswer:", "pos") == " pos" + tokenizer.eos_token


def test_generation_bound_fits_the_longest_label(tmp_path):
    split = tmp_path / "test.jsonl"
    split.write_text("\n".join(json.dumps({"label": label}) for label in ["no", "Modifiers or Adjectives", "é"]) + "\n")
    # " Modifiers or Adjectives" is 24 bytes: a token is at least one byte, so it always fits.
    assert evaluation.generation_bound(split) == 24 + evaluation.ROOM
