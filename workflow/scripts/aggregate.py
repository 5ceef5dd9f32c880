from _job import job_log

from experiment import tables

with job_log(snakemake):
    summary = tables.summarise(tables.load_records(list(snakemake.input)))
    table = tables.main_table(summary, snakemake.params.methods)
    tables.write_tables(summary, table, snakemake.output.csv, snakemake.output.md, snakemake.output.tex)
