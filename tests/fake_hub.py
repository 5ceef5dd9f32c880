"""Local stand-ins for the paper profile's hub sources, for tests without a hub.

Models: tiny random decoders of the paper's two architecture classes, saved with
``save_pretrained`` so that jobs load them through ``from_pretrained`` (the ``pretrained``
kind): Llama with multi-head attention and a 4,096-token context (Llama-2-7B's), and Qwen2 with
grouped-query attention and q/k/v biases. Each tokenizer carries a chat template of its family.

Datasets: folders laid out as the hub's parquet conversion (``<config>/<split>/0000.parquet``,
the layout the specs in evals/hf/ name in ``data_files``), written by ``datasets`` itself so
that the parquet files carry the real features: ClassLabel names, and GoEmotions' ``labels``
list of ClassLabels with some multi-label rows.
"""

from __future__ import annotations

from pathlib import Path

from experiment import models

LLAMA_2_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token }}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# name -> (architecture, shape overrides, chat template)
MODELS = {
    "llama-2-7b-chat": ("llama", {"num_key_value_heads": 4, "max_position_embeddings": 4096}, LLAMA_2_CHAT_TEMPLATE),
    "qwen2.5-3b-instruct": ("qwen2", {"num_key_value_heads": 2, "max_position_embeddings": 32768}, CHATML_TEMPLATE),
}

GO_EMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
               "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
               "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral"]
DBPEDIA = ["Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation", "Building",
           "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"]
BANKING77 = [f"intent_{i}" for i in range(77)]


def save_models(root: Path) -> dict[str, Path]:
    folders = {}
    for name, (architecture, shape, template) in MODELS.items():
        model, tokenizer = models.tiny_model(architecture, **shape)
        tokenizer.chat_template = template
        folders[name] = Path(root) / name
        model.save_pretrained(folders[name])
        tokenizer.save_pretrained(folders[name])
    return folders


def _write(folder: Path, rows: dict, features, config: str) -> Path:
    import datasets

    table = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    path = Path(folder) / config / "test" / "0000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(path))
    return Path(folder)


def save_datasets(root: Path, per_class: int = 3, multi_label: int = 5) -> dict[str, Path]:
    """The three hub datasets, ``per_class`` rows per label; GoEmotions also gets
    ``multi_label`` rows with two emotions, which preparation must drop and count."""
    from datasets import ClassLabel, Sequence, Value

    root = Path(root)
    emotions = [[i] for i in range(len(GO_EMOTIONS)) for _ in range(per_class)] + [[0, 1 + i] for i in range(multi_label)]
    dbpedia = [i for i in range(len(DBPEDIA)) for _ in range(per_class)]
    banking = [i for i in range(len(BANKING77)) for _ in range(per_class)]
    return {
        "go_emotions": _write(root / "go_emotions", {
            "text": [f"comment {n} feels {'/'.join(GO_EMOTIONS[i] for i in ids)}" for n, ids in enumerate(emotions)],
            "labels": emotions, "id": [f"e{n}" for n in range(len(emotions))]},
            {"text": Value("string"), "labels": Sequence(ClassLabel(names=GO_EMOTIONS)), "id": Value("string")}, "simplified"),
        "dbpedia_14": _write(root / "dbpedia_14", {
            "label": dbpedia, "title": [f"T{n}" for n in range(len(dbpedia))],
            "content": [f"An abstract about a {DBPEDIA[i].lower()}, number {n}." for n, i in enumerate(dbpedia)]},
            {"label": ClassLabel(names=DBPEDIA), "title": Value("string"), "content": Value("string")}, "dbpedia_14"),
        "banking77": _write(root / "banking77", {
            "text": [f"query {n} about {BANKING77[i]}" for n, i in enumerate(banking)], "label": banking},
            {"text": Value("string"), "label": ClassLabel(names=BANKING77)}, "default"),
    }
