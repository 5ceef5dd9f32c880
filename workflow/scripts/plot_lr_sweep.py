from _job import job_log

from experiment import training_figures
from experiment.records import read_json

with job_log(snakemake):
    choices = [read_json(path) for path in snakemake.input]
    training_figures.plot_sweeps(training_figures.sweep_points(choices), snakemake.output[0])
