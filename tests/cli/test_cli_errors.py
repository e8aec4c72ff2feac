"""Every failure the issue-14 review found ends the CLI with exit status 1 and one line,
`bert4rec COMMAND: error: ...`, naming what is wrong; never a traceback (issue 14). The
run-directory cases (resume on other data, incomplete checkpoints) are in test_run_dir.py."""

from __future__ import annotations

import json
import zipfile

import polars as pl
import pytest
from fake_movielens import release_files, write_release
from tiny_run import make_run_dir

from bert4rec.cli import main
from bert4rec.data.corpus import SequenceCorpus

LOG = "user,item,timestamp\n" + "\n".join(f"{u},{i},{i}" for u in range(4) for i in range(6))
TRAIN = ["--epochs", "1", "--device", "cpu", "--no-cache"]


def one_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 1 and exactly one error line (the last), no traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
    assert lines[0].startswith(f"bert4rec {argv[0]}: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--heads", "3"], "heads (3)"),
        (["--epochs", "0"], "epochs"),
        (["--mask-prob", "2"], "mask_prob"),
        (["--min-user-interactions", "-1"], "--min-user-interactions must be >= 0"),
        (["--hidden", "0"], "model.hidden must be in [1, 65536], got 0"),
        (["--heads", "0"], "model.heads must be in [1, 1024], got 0"),
    ],
)
def test_invalid_settings_name_the_setting_and_write_nothing(tmp_path, capsys, flags, named):
    log = tmp_path / "log.csv"
    log.write_text(LOG)
    out = tmp_path / "run"
    assert named in one_error(capsys, ["train", str(log), "--out", str(out), *TRAIN, *flags])
    assert not out.exists()


def test_a_parquet_list_column_is_named(tmp_path, capsys):
    log = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1, 1], "item": [[1], [2]], "timestamp": [1, 2]}).write_parquet(log)
    line = one_error(capsys, ["data", "prepare", str(log), "--no-cache"])
    assert "column 'item' holds List(Int64) values; expected one number or text" in line


def test_a_zip_with_a_corrupted_member(tmp_path, capsys):
    files = release_files("ml-1m")
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for name, body in files.items():
            handle.writestr(f"ml-1m/{name}", body * 50 if name == "ratings.dat" else body)
    with zipfile.ZipFile(archive) as handle:
        info = handle.getinfo("ml-1m/ratings.dat")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for at in range(start + 10, start + 40):  # scramble the deflate stream: zlib.error
        data[at] ^= 0x5A
    archive.write_bytes(bytes(data))
    line = one_error(capsys, ["data", "prepare", str(archive), "--no-cache"])
    assert "ml-1m.zip:ml-1m/ratings.dat: cannot be read" in line
    assert "download the release again" in line


def test_nan_ratings_are_an_error_naming_the_rows(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp,rating\n1,1,1,4\n" + "1,2,2,NaN\n" * 3)
    line = one_error(capsys, ["data", "prepare", str(log), "--no-cache"])
    assert "line 3, column 'rating': expected a finite number, got nan (3 such rows" in line
    folder = write_release("ml-100k", tmp_path)  # MovieLens files reach prepare's own check
    rows = (folder / "u.data").read_text().splitlines()
    rows[1:3] = ["\t".join([*row.split("\t")[:2], "nan", row.split("\t")[3]]) for row in rows[1:3]]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    line = one_error(capsys, ["data", "prepare", str(folder), "--no-cache"])
    assert "ml-100k: 2 ratings are missing, NaN or infinite (event rows 1, 2," in line


@pytest.mark.parametrize("blocked", ["file", "permission"])
def test_an_unwritable_cache_is_skipped_with_a_warning(tmp_path, capsys, caplog, monkeypatch,
                                                       blocked):
    log = tmp_path / "log.csv"
    log.write_text(LOG)
    cache = tmp_path / "cache"
    if blocked == "file":  # a file where the cache folder should be (as root, chmod is no bar)
        cache.write_text("not a folder")
    else:
        def refuse(self, directory):
            raise PermissionError(13, "Permission denied", str(directory))

        monkeypatch.setattr(SequenceCorpus, "save", refuse)
    assert main(["data", "prepare", str(log), "--cache-dir", str(cache / "corpora")]) == 0
    assert "users" in capsys.readouterr().out
    assert "carrying on without it" in caplog.text


def test_out_that_is_a_file_or_cannot_be_written(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text(LOG)
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    line = one_error(capsys, ["train", str(log), "--out", str(blocker), *TRAIN])
    assert "a-file: exists and is not a folder" in line and blocker.read_text() == "mine"
    line = one_error(capsys, ["train", str(log), "--out", str(blocker / "run"), *TRAIN])
    assert "cannot write there" in line
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr("os.access", lambda path, mode: str(path) != str(locked))  # read-only
    line = one_error(capsys, ["train", str(log), "--out", str(locked / "run"), *TRAIN])
    assert f"cannot write there ({locked} is not a writable folder)" in line


def test_broken_run_directories(tmp_path, capsys):
    run = make_run_dir(tmp_path / "garbage-items")
    (run / "items.parquet").write_bytes(b"PAR1 this is not parquet")
    line = one_error(capsys, ["recommend", str(run), "Alien"])
    assert "items.parquet: not a readable Parquet file" in line
    run = make_run_dir(tmp_path / "no-weights")
    (run / "model.safetensors").unlink()
    line = one_error(capsys, ["serve", str(run), "--port", "1"])
    assert "model.safetensors: missing" in line
    run = make_run_dir(tmp_path / "tampered")
    pristine = json.loads((run / "config.json").read_text())
    for name, value, message in [("heads", 4, "model.heads 4 (the weights have 2)"),
                                 ("hidden", 4096, "model.hidden 4096 (the weights have 16)"),
                                 ("heads", 0, "model.heads must be a whole number in [1, 1024], "
                                              "got 0"),
                                 ("hidden", -16, "model.hidden must be a whole number in "
                                                 "[1, 65536], got -16")]:
        config = {**pristine, "model": {**pristine["model"], name: value}}
        (run / "config.json").write_text(json.dumps(config))
        assert message in one_error(capsys, ["recommend", str(run), "Alien"])


def test_download_refuses_to_replace_a_folder_it_did_not_create(tmp_path, capsys):
    mine = tmp_path / "ml-latest"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes")
    line = one_error(capsys, ["data", "download", "ml-latest", "--data-dir", str(tmp_path)])
    assert f"{mine}: already exists and is not a release that bert4rec downloaded" in line
    assert (mine / "notes.txt").read_text() == "my own notes"


def test_an_unexpected_error_is_one_line_with_a_hint_and_v_shows_the_traceback(
        tmp_path, capsys, monkeypatch):
    run = str(make_run_dir(tmp_path / "run"))

    def bug(run_dir, **options):
        raise RuntimeError("an unforeseen bug\nwith a second line")

    monkeypatch.setattr("bert4rec.cli.use.Recommender.load", bug)
    line = one_error(capsys, ["recommend", run, "Alien"])
    assert line == ("bert4rec recommend: error: unexpected RuntimeError: an unforeseen bug with "
                    "a second line (run with -v for the traceback; please report it)")
    assert main(["-v", "recommend", run, "Alien"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "the traceback is above" in err
