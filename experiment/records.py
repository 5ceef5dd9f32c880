"""Run records and atomic writes.

Every file the suite produces is written to a temporary name in the same folder and renamed,
so a job killed half-way never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "peft", "lm_eval", "datasets", "snakemake", "pandas", "gguf")


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files that atomic_path left for ``path`` in a process killed outright.

    The pattern is the name atomic_path gives (its mkstemp prefix and suffix)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "HEAD")
    # Outputs the DAG writes are not code: tracked-file edits make a run "dirty", and so does a
    # file git does not know under methods/ or evals/ (a dropped-in method or benchmark is in
    # no commit, so the commit alone does not say what ran).
    edited = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "methods", "evals")
    return {"commit": commit or None, "dirty": bool(edited or untracked), "untracked": untracked.split()}


def provenance() -> dict:
    """What a run ran on: package versions, code version, hardware, and whether the hub was reachable."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or platform.machine()
    from experiment import hub, precision

    return {
        "packages": versions,
        "git": git_state(),
        "offline": hub.offline_state(),
        "hardware": {"device": device, "cuda": torch.cuda.is_available(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                     # Which kernels ran: bf16 results differ between CPUs with and without bf16 instructions.
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "bf16_native": precision.native_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu"))},
        "python": platform.python_version(),
    }
