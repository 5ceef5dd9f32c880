from _job import job_log

from experiment import tables

with job_log(snakemake):
    report = tables.build(tables.load_records(list(snakemake.input)))
    out = snakemake.output
    tables.write_main(report, snakemake.params.methods, out.csv, out.md, out.tex)
    tables.write_paired(report, out.paired_csv, out.paired_md)
    tables.write_macro_f1(report, snakemake.params.methods, out.macro_f1_csv, out.macro_f1_md)
