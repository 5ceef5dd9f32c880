#!/usr/bin/env bash
# A stand-in batch scheduler for tests/test_cluster.py: starts the job script Snakemake hands
# over (the last argument) as its own background process, prints a job id, and returns.
jobscript="${*: -1}"
nohup bash "$jobscript" > "$jobscript.out" 2>&1 &
echo $!
