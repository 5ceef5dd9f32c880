import os
import shutil
import subprocess
import sys
from pathlib import Path

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


REPO = Path(__file__).resolve().parent.parent


def run_snakemake(*args, cwd=REPO, check=True):
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def copy_checkout(root: Path) -> Path:
    """The files git tracks (or would), without committed results: a fresh clone's view."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("results/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    return root


@pytest.fixture(scope="session")
def smoke_copy(tmp_path_factory):
    """A copy of the checkout with the smoke DAG (and its analyses) run to completion in it."""
    root = copy_checkout(tmp_path_factory.mktemp("suite"))
    run_snakemake("all", "analyses", "--cores", "2", "--configfile", "config/smoke.yaml", cwd=root)
    return root


