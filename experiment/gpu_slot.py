"""One GPU per job on a machine with several.

Snakemake counts GPUs (``--resources gpu=N`` caps how many GPU jobs run at once) but does not
say which GPU a job gets, so every job would use cuda:0. A model-loading job therefore claims
a free GPU itself before CUDA starts: it takes an exclusive lock on one file per GPU and
restricts itself to that GPU (CUDA_VISIBLE_DEVICES), so its ``cuda`` is that GPU. The lock is
held until the process ends, a crashed one included (the kernel drops it).

Where the job sees one GPU or none (a Slurm job given ``--gpus=1`` sees only its own), there
is nothing to pick and nothing is locked. No torch import here: CUDA_VISIBLE_DEVICES counts
only when set before CUDA initialises.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

_held = []  # the open lock files of this process


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else every NVIDIA GPU the
    driver lists."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    driver = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(driver.iterdir())))] if driver.is_dir() else []


def lock_dir() -> Path:
    return Path(os.environ.get("SUITE_GPU_LOCKS", Path(tempfile.gettempdir()) / f"suite-gpu-slots-{os.getuid()}"))


def claim(wait_s: float = 3600, poll_s: float = 5) -> str | None:
    """Restrict this process to one free GPU and hold it; returns its id (None without GPUs).
    Waits up to ``wait_s`` when all are taken (more GPU jobs than GPUs: --resources gpu= was
    set above the GPU count)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("gpu_slot.claim: CUDA is already initialised in this process; claim before any CUDA call")
    gpus = visible_gpus()
    if len(gpus) <= 1:
        return gpus[0] if gpus else None
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for gpu in gpus:
            handle = open(folder / f"gpu-{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {gpus} after {wait_s:.0f} s (locks in {folder}); "
                               "is --resources gpu= larger than the number of GPUs?")
        time.sleep(poll_s)
