# The two commands of the README: `make reproduce` and `make test`.
# Both create the virtual environment on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= default
CORES ?= all
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
	$(BIN)/snakemake --cores $(CORES) --configfile config/$(PROFILE).yaml --rerun-incomplete all analyses

dry-run: $(STAMP)
	$(BIN)/snakemake -n --quiet rules --configfile config/$(PROFILE).yaml

test: $(STAMP)
	$(BIN)/python -m pytest
