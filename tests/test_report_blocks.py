"""The README's and docs' result numbers are the committed tables' (experiment/report_blocks.py)."""

import shutil
import subprocess

import pandas as pd
import pytest

from experiment import report_blocks, tables
from experiment.report_blocks import REPO


def _shallow() -> bool:
    done = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True)
    return done.returncode != 0 or done.stdout.strip() == "true"


def test_every_committed_block_is_what_the_committed_tables_give():
    blocks = {path: report_blocks.BLOCK.findall(path.read_text()) for path in report_blocks.documents()}
    assert blocks[REPO / "README.md"], "the README has no generated block"
    if _shallow():  # the history blocks read older commits (git show)
        pytest.skip("shallow clone: history blocks cannot be rendered")
    stale = {str(path.relative_to(REPO)): report_blocks.stale(path) for path in blocks}
    assert not any(stale.values()), f"run `python -m experiment.report_blocks`: {stale}"


def test_the_readme_headline_is_tables_sentence_of_the_committed_csv():
    paired = pd.read_csv(REPO / "results/default/tables/paired_differences.csv", comment="#")
    readme = (REPO / "README.md").read_text()
    for _, row in paired[paired["task"] == "average"].iterrows():
        assert tables.sentence(row) in readme


def test_a_number_edited_by_hand_inside_a_block_fails_the_check(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    text = readme.read_text()
    match = next(m for m in report_blocks.BLOCK.finditer(text) if m["name"] == "headline:default")
    sentence = match["body"].splitlines()[0]
    edited_sentence = sentence.replace("[", "[1", 1)  # e.g. [−15.1, ...] -> [1−15.1, ...]: a hand edit
    assert edited_sentence != sentence
    readme.write_text(text.replace(sentence, edited_sentence, 1))
    assert report_blocks.stale(readme) == ["headline:default"]
    # Rewriting puts the tables' text back.
    readme.write_text(report_blocks.rewrite(readme.read_text()))
    assert report_blocks.stale(readme) == []


def test_a_changed_table_changes_the_block(tmp_path):
    """The block follows the table: a regenerated paired_differences.csv makes the committed
    README stale until it is rewritten."""
    tables_dir = tmp_path / "results/default/tables"
    shutil.copytree(REPO / "results/default/tables", tables_dir)
    csv = tables_dir / "paired_differences.csv"
    stamp, *rest = csv.read_text().splitlines(keepends=True)
    paired = pd.read_csv(csv, comment="#")
    paired.loc[paired["task"] == "average", "difference"] -= 10
    csv.write_text(stamp + paired.to_csv(index=False))
    readme = (REPO / "README.md").read_text()
    headline = next(m[0] for m in report_blocks.BLOCK.finditer(readme) if m["name"] == "headline:default")
    page = tmp_path / "page.md"
    page.write_text(headline)
    assert report_blocks.stale(page, root=REPO) == []
    assert report_blocks.stale(page, root=tmp_path) == ["headline:default"]


def test_an_unknown_block_kind_names_the_kinds():
    with pytest.raises(KeyError, match="headline"):
        report_blocks.render("no_such_kind:default")


GNU_TIME = """\tCommand being timed: "make reproduce"
\tUser time (seconds): 12000.50
\tPercent of CPU this job got: 190%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:45:07
\tMaximum resident set size (kbytes): 2466412
\tExit status: 0
"""


def test_the_wall_clock_block_reads_gnu_time_output(tmp_path):
    folder = tmp_path / "results/default/benchmarks/wall_clock"
    folder.mkdir(parents=True)
    (folder / "2-reproduce.txt").write_text(GNU_TIME)
    (folder / "1-install.txt").write_text(GNU_TIME.replace("make reproduce", "make install").replace("1:45:07", "1:17.31"))
    block = report_blocks.render("wall_clock:default", root=tmp_path)
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert rows[0].split("|")[1:3] == [" `make install`   ", " 1 min 17 s   "]
    assert rows[1].split("|")[1:3] == [" `make reproduce` ", " 1 h 45 min   "]


def test_a_wall_clock_file_that_is_not_gnu_time_output_is_named(tmp_path):
    folder = tmp_path / "results/default/benchmarks/wall_clock"
    folder.mkdir(parents=True)
    (folder / "grid.txt").write_text("real 1m2s\n")
    with pytest.raises(ValueError, match="grid.txt: no 'Command being timed' line"):
        report_blocks.render("wall_clock:default", root=tmp_path)


def test_the_budget_block_adds_up_per_part(tmp_path):
    folder = tmp_path / "results/default/benchmarks"
    for rule, seconds in [("sweep/m/a", 100.0), ("run/m/a/seed1", 40.0), ("length_sweep/m/a", 7.0), ("cost", 3.0)]:
        (folder / rule).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{rule}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    block = report_blocks.render("budget:default", root=tmp_path)
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): int(line.split("|")[4]) for line in block.splitlines()[2:]
            if line.startswith("|")}
    assert rows[("main grid", "(all)")] == 140
    assert rows[("analyses", "(all)")] == 7
    assert rows[("cost", "(all)")] == 3
    assert rows[("total", "(all)")] == 150
