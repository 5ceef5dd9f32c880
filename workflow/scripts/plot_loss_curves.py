from _job import job_log

from experiment import training_figures
from experiment.records import read_json

with job_log(snakemake):
    curves = training_figures.loss_curves([read_json(path) for path in snakemake.input])
    training_figures.plot_loss_curves(curves, snakemake.params.target_loss, snakemake.output[0])
