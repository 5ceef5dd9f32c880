"""Where models and datasets come from: the Hugging Face hub, or local files.

A path names a hub repository when it has the hub's ``owner/name`` form and no such folder
exists here; ``from_pretrained`` and ``datasets.load_dataset`` draw the same line, so the
paper profile's hub ids and the rehearsal's local folders go through the same calls.

Profiles without hub sources run every job offline (``offline_unless``), so that a local run
never waits on the network; the decision is the profile's (config key ``hub``), taken once
when the workflow is parsed, before any job imports huggingface_hub (which reads the
variables once, at import).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def is_hub_id(path: str) -> bool:
    return bool(HUB_ID.match(str(path))) and not Path(path).exists()


def offline_unless(hub: bool) -> None:
    """Without ``hub``, every job this process starts runs offline. A user's own setting
    (e.g. HF_HUB_OFFLINE=1 on nodes without internet, with a filled cache) is kept."""
    if not hub:
        for name in OFFLINE_VARIABLES:
            os.environ.setdefault(name, "1")


def offline_state() -> dict:
    """Whether this process's hub and datasets libraries run offline, as they read it at import."""
    import datasets.config
    import huggingface_hub.constants

    return {"hub": bool(huggingface_hub.constants.HF_HUB_OFFLINE), "datasets": bool(datasets.config.HF_DATASETS_OFFLINE)}


def resolved_dataset_commit(path: str, revision: str | None) -> str | None:
    """The commit a hub dataset's revision (a branch such as refs/convert/parquet, or a
    commit) pointed at when it was read; None for local files."""
    if not is_hub_id(path):
        return None
    from huggingface_hub import HfApi

    return HfApi().dataset_info(path, revision=revision).sha
