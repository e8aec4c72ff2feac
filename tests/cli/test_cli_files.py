"""The files the command line reads and writes, and what reaches the terminal (issue 23):
allow and deny lists are read with bounds and may start with a BOM; an output file is checked
before any scoring, its failures are one line naming it, temporary files a kill left are
cleared, formula-like CSV cells are neutralised; no control character from the data reaches
the terminal through --explain or --json."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import polars as pl
import pytest
from tiny_run import USERS, item_table, make_run_dir

from bert4rec import files
from bert4rec.cli import main
from bert4rec.inference.recommender import Recommender

HOSTILE = {  # item id -> title
    1: '=HYPERLINK("http://evil.example","click")',
    260: "+1 plus", 1196: "-2 minus", 1214: "@SUM(A1)", 1200: "\tTabbed", 2571: "\rReturned",
}
CONTROLS = "\u200f\u061c\u202e\u2066\u009b"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"), users=USERS)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The dozen films with spreadsheet formulas and terminal controls in their titles."""
    items = item_table().with_columns(
        pl.col("item").replace_strict(HOSTILE, default=None, return_dtype=pl.String)
        .fill_null(pl.col("title") + pl.lit(CONTROLS)).alias("title"))
    return make_run_dir(tmp_path_factory.mktemp("run"), users=USERS, items=items)


def one_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and "unexpected" not in err, err
    return lines[0]


# Allow and deny lists


def test_a_list_may_start_with_a_bom(run, tmp_path, capsys):
    listed = tmp_path / "allow.txt"
    listed.write_bytes(b"\xef\xbb\xbf260\r\n1196\r\n")
    assert main(["recommend", str(run), "id:1", "--items-from", str(listed), "--json"]) == 0
    assert {r["item"] for r in json.loads(capsys.readouterr().out)["items"]} == {260, 1196}


def test_a_long_bad_line_gives_a_short_error(run, tmp_path, capsys):
    listed = tmp_path / "allow.txt"
    listed.write_text("260\n" + "9" * 100_000 + "x\n")
    line = one_error(capsys, ["recommend", str(run), "id:1", "--items-from", str(listed)])
    assert f"{listed}, line 2: longer than 1,000 bytes" in line and len(line) < 300


def test_a_list_without_line_breaks_is_not_read_to_the_end(run, capsys):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    line = one_error(capsys, ["recommend", str(run), "id:1", "--items-from", "/dev/zero"])
    assert "/dev/zero, line 1: longer than 1,000 bytes" in line


@pytest.mark.parametrize("text", ["+260", " ٢٦٠"])
def test_listed_ids_are_plain_ascii_digits(run, tmp_path, capsys, text):
    listed = tmp_path / "allow.txt"
    listed.write_text(f"{text}\n")
    line = one_error(capsys, ["recommend", str(run), "id:1", "--items-from", str(listed)])
    assert "line 1: item" in line and "is not among the model's 14 items" in line


# --output


def test_output_in_a_file_that_is_not_a_folder(run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    line = one_error(capsys, ["recommend", str(run), "--all-users", "--output",
                              str(tmp_path / "a-file" / "r.csv")])
    assert f"{tmp_path / 'a-file'}: is not a folder" in line and "File exists" not in line


def test_an_unwritable_folder_fails_before_any_scoring(run, tmp_path, capsys, monkeypatch):
    """A read-only folder (simulated: running as root ignores permissions) is found before
    a single history is scored, and the error names the folder, not a temporary file."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    scored = []
    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(Recommender, "top_k", lambda *a, **k: scored.append(1) or 1 / 0)
    line = one_error(capsys, ["recommend", str(run), "--all-users", "--output",
                              str(folder / "recs.csv")])
    assert f"{folder}: cannot write there (Read-only file system)" in line
    assert scored == [] and ".recs.csv." not in line


@pytest.mark.parametrize(("suffix", "method", "error"), [
    (".csv", "write_csv", OSError("No space left on device (os error 28)")),
    (".parquet", "write_parquet", pl.exceptions.ComputeError(
        "parquet: File out of specification: underlying IO error: No space left on device "
        "(os error 28)")),
])
def test_a_full_disk_is_one_line_naming_the_file(run, tmp_path, capsys, monkeypatch, suffix,
                                                 method, error):
    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(pl.DataFrame, method, full)
    output = tmp_path / f"recs{suffix}"
    line = one_error(capsys, ["recommend", str(run), "--all-users", "--output", str(output)])
    assert f"{output}: cannot write the table (No space left on device)" in line
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_temporary_files_a_kill_left_are_cleared_by_the_next_run(run, tmp_path, capsys):
    output = tmp_path / "k.csv"
    left = [tmp_path / ".k.csv.0a1b2c3d", tmp_path / ".k.csv.deadbeef"]
    for path in left:
        path.write_bytes(b"x" * 1000)  # what kill -9 during --all-users left
    mine = tmp_path / ".k.csv.notes"  # not a name bert4rec gives its temporary files
    mine.write_text("mine")
    assert main(["recommend", str(run), "--all-users", "--output", str(output)]) == 0
    assert not any(path.exists() for path in left)
    assert mine.read_text() == "mine" and output.is_file()


def test_a_temporary_file_another_process_writes_is_left_alone(run, tmp_path):
    output = tmp_path / "k.csv"
    live = tmp_path / ".k.csv.feedf00d"
    live.write_bytes(b"")
    with files.held(live):  # as `atomic_write` holds it while it writes
        assert main(["recommend", str(run), "--all-users", "--output", str(output)]) == 0
    assert live.exists()


def test_formula_like_cells_are_neutralised_in_csv_but_not_in_parquet(hostile_run, tmp_path):
    for suffix, separator in ((".csv", ","), (".tsv", "\t")):
        output = tmp_path / f"recs{suffix}"
        assert main(["recommend", str(hostile_run), "--all-users", "-k", "13", "--output",
                     str(output)]) == 0
        titles = set(pl.read_csv(output, separator=separator)["title"])
        assert {"'" + title for title in HOSTILE.values()} <= titles
        assert not any(t[0] in "=+-@\t\r" for t in titles), suffix
    output = tmp_path / "recs.parquet"
    assert main(["recommend", str(hostile_run), "--all-users", "-k", "13", "--output",
                 str(output)]) == 0
    assert set(HOSTILE.values()) <= set(pl.read_parquet(output)["title"])


# The terminal


@pytest.mark.parametrize("flags", [["--explain"], ["--json"], ["--explain", "--json"]])
def test_no_bidi_or_c1_control_reaches_the_terminal(hostile_run, capsys, flags):
    for argv in (["recommend", str(hostile_run), "id:4896", "id:5816", *flags],
                 ["recommend", str(hostile_run), "--user", "7", *flags]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert not set(out) & set(CONTROLS), argv
        if "--json" in flags:  # the same values, escaped
            body = json.loads(out)
            history = (body[0] if isinstance(body, list) else body)["history"]
            assert history[0]["title"].endswith(CONTROLS)
