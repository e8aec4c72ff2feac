"""bert4rec never writes over or deletes what the user owns (issue 23): it writes only into a
folder that is new, empty or marked as its own (`.bert4rec.json`), replaces only its own files
there, cleans up after a failure by name, and writes an export as one unit."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from fake_movielens import write_release
from test_run_dir import TINY, write_log
from tiny_run import USERS, item_table, make_run_dir

from bert4rec import files, rundir
from bert4rec.cli import main
from bert4rec.data import download, movielens
from bert4rec.inference import export as ex


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


def seed_user_files(folder: Path, names: dict[str, bytes]) -> dict[str, bytes]:
    """Write the user's files into `folder`; returns what they hold."""
    for name, data in names.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return dict(names)


# Case 1 and 2: train into a folder of the user's


def test_train_refuses_a_folder_holding_the_users_files(tmp_path, capsys):
    log = write_log(tmp_path / "log.csv")
    out = tmp_path / "userout"
    out.mkdir()
    mine = seed_user_files(out, {"metrics.json": b'{"mine": 1}', "items.parquet": b"PAR1 mine"})
    assert main(["train", str(log), "--out", str(out), *TINY]) == 1
    line = error_line(capsys)
    assert f"{out}: holds files bert4rec did not write ('items.parquet', 'metrics.json')" in line
    assert snapshot(out) == mine


def test_a_failed_start_removes_only_its_own_files_by_name(tmp_path, capsys, monkeypatch):
    """Ctrl-C before the first checkpoint, while the user saved a file in the (empty) folder:
    the run's files go, the user's file stays."""
    log = write_log(tmp_path / "log.csv")
    out = tmp_path / "out"
    out.mkdir()

    def user_saves_then_ctrl_c(*args, **kwargs):
        (out / "while-it-ran.txt").write_text("saved during the run")
        (out / "tensorboard" / "my-plot.png").write_bytes(b"png")
        raise KeyboardInterrupt

    monkeypatch.setattr("bert4rec.training.loop.validate", user_saves_then_ctrl_c)
    assert main(["train", str(log), "--out", str(out), *TINY]) == 130
    assert snapshot(out) == {"while-it-ran.txt": b"saved during the run",
                             "tensorboard/my-plot.png": b"png"}


def test_a_run_directory_is_marked_and_may_hold_the_users_files(tmp_path, capsys):
    """The marker names the run's files; a file the user keeps in the run directory survives
    a resume, and the folder is still refused as a new --out."""
    log = write_log(tmp_path / "log.csv")
    out = tmp_path / "run"
    assert main(["train", str(log), "--out", str(out), *TINY]) == 0
    marker = files.read_marker(out)
    assert marker is not None and marker.kind == "run" and "config.json" in marker.files
    notes = seed_user_files(out, {"notes.txt": b"my notes"})
    assert main(["train", str(log), "--out", str(out), *TINY, "--resume"]) == 0
    assert (out / "notes.txt").read_bytes() == notes["notes.txt"]
    capsys.readouterr()
    assert main(["train", str(log), "--out", str(out), *TINY]) == 1
    assert "already holds a run; pass --resume" in error_line(capsys)


# Case 3 and 4: export


@pytest.fixture()
def two_runs(tmp_path):
    """Two runs over different catalogues: the dozen films, and the first six of them."""
    small = item_table().head(6)
    return make_run_dir(tmp_path / "a"), make_run_dir(tmp_path / "b", items=small)


def test_export_refuses_a_folder_holding_the_users_items_csv(tmp_path, two_runs, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    mine = seed_user_files(folder, {"items.csv": b"my,own,table\n"})
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(two_runs[0]), "--format", "pt2", "--out", str(folder),
                     *extra]) == 1
        assert "holds files bert4rec did not write ('items.csv')" in error_line(capsys)
        assert snapshot(folder) == mine


@pytest.mark.slow
def test_a_second_export_replaces_the_first_as_one_unit(tmp_path, two_runs, capsys,
                                                        monkeypatch):
    first, second = two_runs
    served = tmp_path / "served"
    assert main(["export", str(first), "--format", "onnx", "--out", str(served)]) == 0
    exported = snapshot(served)
    assert main(["export", str(second), "--format", "pt2", "--out", str(served)]) == 1
    assert "already holds an export; pass --overwrite" in error_line(capsys)

    def killed(scorer, path):  # the second export dies while its model is written
        path.write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "_write_pt2", killed)
    with pytest.raises(KeyboardInterrupt):
        ex.export(second, "pt2", served, overwrite=True)
    assert snapshot(served) == exported  # the first export, whole
    monkeypatch.undo()
    assert main(["export", str(second), "--format", "pt2", "--out", str(served),
                 "--overwrite"]) == 0
    assert sorted(snapshot(served)) == [files.MARKER, "items.csv", "model.pt2",
                                        "model.pt2.json"]  # no model.onnx of the first run
    signature = json.loads((served / "model.pt2.json").read_text())
    assert signature["n_items"] == 6 == pl.read_csv(served / "items.csv").height
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "served"]  # no staging


# Case 5: a download repairs its own folder and keeps the user's files


def test_a_download_replaces_only_the_releases_files(tmp_path, monkeypatch):
    data = write_release("ml-latest-small", tmp_path / "build", as_zip=True).read_bytes()
    monkeypatch.setattr(download, "_fetch", lambda url, dest, progress, timeout:
                        _copy(data, dest.parent / ".partial"))
    monkeypatch.setitem(movielens.RELEASES, "ml-latest-small", _unverified("ml-latest-small"))
    root = tmp_path / "data"
    release = download.download("ml-latest-small", root, progress=False)
    (release / "ratings.csv").unlink()  # damaged since
    mine = seed_user_files(release, {"analysis.txt": b"my analysis",
                                     "plots/a.png": b"png"})
    assert download.download("ml-latest-small", root, progress=False) == release
    assert (release / "ratings.csv").is_file()
    assert {name: snapshot(release).get(name) for name in mine} == mine
    assert files.read_marker(release).kind == "download"


def _copy(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


def _unverified(name: str) -> movielens.Release:
    import dataclasses

    return dataclasses.replace(movielens.RELEASES[name], sha256=None, md5=None)


# recommend --output


@pytest.fixture()
def users_run(tmp_path):
    return make_run_dir(tmp_path / "run", users=USERS)


def test_recommend_output_replaces_only_its_own_table_and_only_when_told(users_run, tmp_path,
                                                                         capsys):
    output = tmp_path / "recs.csv"
    output.write_text("my,own,spreadsheet\n")
    args = ["recommend", str(users_run), "--all-users", "--output", str(output)]
    assert main(args) == 1
    assert f"{output}: exists; pass --overwrite" in error_line(capsys)
    assert main([*args, "--overwrite"]) == 1
    assert "is not a table bert4rec wrote" in error_line(capsys)
    assert output.read_text() == "my,own,spreadsheet\n"
    output.unlink()
    assert main(args) == 0
    first = output.read_bytes()
    assert main([*args, "-k", "3", "--overwrite"]) == 0  # its own table: replaced
    assert output.read_bytes() != first
    capsys.readouterr()
    parquet = tmp_path / "recs.parquet"  # the same columns, but the user's file
    pl.DataFrame({"user": [1], "rank": [1], "item": [1], "score": [0.0]}).write_parquet(parquet)
    assert main([*args[:-1], str(parquet), "--overwrite"]) == 1
    assert "is not a table bert4rec wrote" in error_line(capsys)


# The property: no writing command changes or deletes a file it did not create


POOL = ["config.json", "model.safetensors", "metrics.json", "items.parquet", "users.parquet",
        "provenance.json", "checkpoints/last.pt", "tensorboard/events.out.tfevents.1.x",
        "items.csv", "model.onnx", "model.pt2", "model.pt2.json", "ratings.csv", "movies.csv",
        "links.csv", "README.txt", "recs.csv", "recs.parquet", files.MARKER, "notes.txt",
        "sub/deeper.bin", ".hidden"]
"""Names the user's files take: many are names a bert4rec command writes."""


def layouts(owned: tuple[str, ...], seed: int, n: int = 6) -> list[tuple[dict, bool]]:
    """`n` random layouts of the user's files: (files, whether the folder also carries a
    marker of the command's kind). A marked folder's user files avoid the names bert4rec owns
    there (those are its own); an unmarked folder's take any name, the marker's too."""
    rng = random.Random(seed)
    drawn = []
    for _ in range(n):
        marked = rng.random() < 0.4
        pool = [p for p in POOL if not (marked and (p == files.MARKER or any(
            p == o or p.startswith(o + "/") for o in owned)))]
        names = rng.sample(pool, rng.randint(1, 4))
        drawn.append(({name: rng.randbytes(rng.randint(0, 64)) for name in names}, marked))
    return drawn


def check_property(folder: Path, layout: tuple[dict, bool], kind: str, owned: tuple[str, ...],
                   command) -> None:
    user_files, marked = layout
    folder.mkdir(parents=True)
    seed_user_files(folder, user_files)
    if marked:
        files.write_marker(folder, kind, owned)
    command()
    after = snapshot(folder)
    assert {name: after.get(name) for name in user_files} == user_files, (layout, after)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_no_writing_command_touches_the_users_files(tmp_path, seed, monkeypatch, capsys):
    """train, demo, export, recommend --output, data download and Model.save, each into
    folders seeded with the user's files: whatever the command does (refuse or write), every
    user file is still there, byte for byte."""
    import bert4rec

    log = write_log(tmp_path / "log.csv")
    run = make_run_dir(tmp_path / "run", users=USERS)
    release = write_release("ml-latest-small", tmp_path / "build", as_zip=True).read_bytes()
    monkeypatch.setattr(download, "_fetch", lambda url, dest, progress, timeout:
                        _copy(release, dest.parent / ".partial"))
    monkeypatch.setitem(movielens.RELEASES, "ml-latest-small", _unverified("ml-latest-small"))
    model = bert4rec.Model.load(run)
    download_files = _release_files(release)
    from bert4rec.cli import demo
    from bert4rec.training.loop import fit

    # the demo trains on a planted ml-latest-small, and one epoch of its 80 is enough here
    monkeypatch.setattr(demo, "fit", lambda *a, **k: fit(*a, **{**k, "stop_after_epoch": 1}))
    planted = tmp_path / "data" / "ml-latest-small"
    planted.mkdir(parents=True)
    ratings = pl.read_csv(log).rename({"user": "userId", "item": "movieId"})
    ratings.select("userId", "movieId", pl.lit(5.0).alias("rating"), "timestamp").write_csv(
        planted / "ratings.csv")
    pl.DataFrame({"movieId": ratings["movieId"].unique().sort()}).with_columns(
        title=pl.format("Film {}", "movieId"), genres=pl.lit("Drama")
    ).write_csv(planted / "movies.csv")
    commands = {
        "train": ("run", rundir.RUN_FILES, lambda out: main(
            ["train", str(log), "--out", str(out), *TINY])),
        "demo": ("run", rundir.RUN_FILES, lambda out: main(
            ["demo", "--out", str(out), "--data-dir", str(tmp_path / "data")])),
        "export": ("export", ("model.pt2", "model.pt2.json", "items.csv"), lambda out: main(
            ["export", str(run), "--format", "pt2", "--out", str(out), "--overwrite"])),
        "recommend --output": ("output", (), lambda out: main(
            ["recommend", str(run), "--all-users", "--output", str(out / "recs.csv"),
             "--overwrite"])),
        "data download": ("download", download_files, lambda out: download.download(
            "ml-latest-small", out.parent, progress=False)),
        "Model.save": ("run", rundir.RUN_FILES, lambda out: _quietly(model.save, out)),
    }
    for number, (name, (kind, owned, command)) in enumerate(commands.items()):
        for case, layout in enumerate(layouts(owned, seed * 100 + number)):
            folder = tmp_path / "cases" / f"{number}-{case}" / (
                "ml-latest-small" if name == "data download" else "out")
            check_property(folder, layout, kind, owned, lambda c=command, f=folder: _quietly(c, f))
        capsys.readouterr()


def _release_files(data: bytes) -> tuple[str, ...]:
    """The files a release zip brings, relative to its folder."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return tuple(name.split("/", 1)[1] for name in archive.namelist()
                     if not name.endswith("/"))


def _quietly(command, *args):
    """Run `command`; an expected refusal (a bert4rec error) is an answer, not a failure."""
    from bert4rec.errors import Bert4RecError

    try:
        return command(*args)
    except (Bert4RecError, ValueError, OSError):
        return None


def test_model_save_writes_a_marked_run_and_refuses_the_users_folder(tmp_path):
    import bert4rec
    from bert4rec.errors import ModelDirError

    model = bert4rec.Model.load(make_run_dir(tmp_path / "run", users=USERS))
    mine = tmp_path / "mine"
    mine.mkdir()
    kept = seed_user_files(mine, {"config.json": b"{}", "notes.txt": b"n"})
    with pytest.raises(ModelDirError, match="holds files bert4rec did not write"):
        model.save(mine)
    assert snapshot(mine) == kept
    model.save(tmp_path / "saved")
    assert files.read_marker(tmp_path / "saved").kind == "run"


def test_an_unverified_download_warns_in_one_line(tmp_path, monkeypatch, capsys, caplog):
    """A log line (the command line prints it on one line), not a two-line Python warning."""
    data = write_release("ml-latest-small", tmp_path / "build", as_zip=True).read_bytes()
    monkeypatch.setattr(download, "_fetch", lambda url, dest, progress, timeout:
                        _copy(data, dest.parent / ".partial"))
    monkeypatch.setitem(movielens.RELEASES, "ml-latest-small", _unverified("ml-latest-small"))
    assert main(["data", "download", "ml-latest-small", "--data-dir", str(tmp_path / "d")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith("ml-latest-small: the file could not be verified")
    assert "UserWarning" not in capsys.readouterr().err
