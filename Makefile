# The two commands of the README: `make reproduce` and `make test`.
# Both create the virtual environment on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= default
# What `make reproduce` builds: Table 1's DAG and the analyses (TARGETS=all stops after Table 1).
TARGETS ?= all analyses
CORES ?= all
# GPUs on this machine (0 without NVIDIA's driver): at most this many GPU jobs run at once, one
# per GPU (experiment/gpu_slot.py). Host memory caps the jobs' declared mem_mb the same way.
GPUS ?= $(shell ls -d /proc/driver/nvidia/gpus/* 2>/dev/null | wc -l)
MEM_MB ?= $(shell awk '/^MemTotal:/ {print int($$2 / 1024)}' /proc/meminfo)
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3

.PHONY: install reproduce test smoke dry-run clean-profile

install: $(STAMP)

# torch==2.13.0 resolves to the CPU wheel on machines without CUDA wheels configured.
# pip is pinned like every other package, so each machine installs with the same resolver
# (`--upgrade pip` once brought in a pip that broke the downloads, issue 16).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# Runs the DAG for one profile (PROFILE=smoke|default|paper) and regenerates results/<profile>/.
reproduce: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(GPUS) mem_mb=$(MEM_MB) --configfile config/$(PROFILE).yaml --rerun-incomplete -- $(TARGETS)

dry-run: $(STAMP)
	$(BIN)/snakemake -n --quiet rules --configfile config/$(PROFILE).yaml

test: $(STAMP)
	$(BIN)/python -m pytest
