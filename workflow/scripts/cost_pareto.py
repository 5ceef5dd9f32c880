import pandas as pd
from _job import job_log

from experiment import figures

with job_log(snakemake):
    cost = pd.read_csv(snakemake.input.cost, comment="#")
    if "model" not in cost:  # one model's cost (config key cost.model, or the first model)
        cost = cost.assign(model=snakemake.params.model)
    accuracy = pd.read_csv(snakemake.input.accuracy, comment="#")
    figures.cost_pareto(cost, accuracy, snakemake.output[0])
