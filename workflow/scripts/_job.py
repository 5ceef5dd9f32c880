"""Setup shared by the DAG's scripts: import this checkout's code, give a GPU job its own GPU,
log to the job's log file."""

import __main__
import contextlib
import logging
import sys
from pathlib import Path

# The checkout that holds this script, ahead of any installed copy of experiment/ and methods/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiment import gpu_slot  # noqa: E402

# At import, before the script imports torch and anything that could start CUDA: a job that
# asks for a GPU (resources: gpu) takes a free one of the machine's (experiment/gpu_slot.py).
if getattr(getattr(getattr(__main__, "snakemake", None), "resources", None), "gpu", 0):
    gpu_slot.claim()


@contextlib.contextmanager
def job_log(snakemake):
    """Send stdout, stderr and Python logging to the job's log; record a failure's traceback there."""
    with open(snakemake.log[0], "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.WARNING, force=True)
        try:
            yield
        except Exception:
            logging.exception("job failed")
            raise
