import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)

from experiment import models  # noqa: E402

# (architecture, key/value heads): grouped-query (2 of 4) and plain multi-head (4 of 4).
ARCHITECTURES = [("llama", 2), ("llama", 4), ("qwen2", 2), ("qwen2", 4)]


@pytest.fixture(params=ARCHITECTURES, ids=lambda p: f"{p[0]}-kv{p[1]}")
def tiny(request):
    architecture, kv_heads = request.param

    def build():
        return models.tiny_model(architecture, num_key_value_heads=kv_heads)

    return build


@pytest.fixture
def batch():
    _, tokenizer = models.tiny_model("llama")
    return tokenizer(["Classify the topic.\nInput: goals galore\nAnswer:"], return_tensors="pt").input_ids
