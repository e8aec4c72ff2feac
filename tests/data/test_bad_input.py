"""Bad input ends with exit status 1 and one message naming the file, line or column and the fix;
nothing half-written is left in the corpus cache (issue 2)."""

from __future__ import annotations

import gzip
import os

import pytest
from fake_movielens import write_release

from bert4rec.cli import main


def prepare_fails(capsys, *args: str) -> str:
    """Run `bert4rec data prepare ARGS`, expect exit 1, return the single error line."""
    assert main(["data", "prepare", *args]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("bert4rec data: error: "), captured.err
    assert captured.out == ""
    return errors[0]


@pytest.fixture(autouse=True)
def _no_cache_left(tmp_path_factory):
    """After each failing run the corpus cache holds nothing."""
    yield
    root = os.environ["BERT4REC_CACHE_DIR"]
    assert not os.path.exists(root) or os.listdir(root) == []


def test_missing_file(tmp_path, capsys):
    message = prepare_fails(capsys, str(tmp_path / "nope.csv"))
    assert "nope.csv: no such file or directory" in message


def test_missing_columns_name_the_options(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("uid,item,ts\n1,2,3\n")
    message = prepare_fails(capsys, str(log))
    assert "missing column(s) 'user', 'timestamp'" in message and "'uid', 'item', 'ts'" in message
    assert "--user-col" in message


def test_misnamed_column_given_on_the_command_line(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n1,2,3\n")
    message = prepare_fails(capsys, str(log), "--time-col", "time")
    assert "missing column(s) 'time'" in message


def test_non_numeric_timestamp_names_line_and_column(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n" + "1,2,3\n" * 20_000 + "1,2,yesterday-ish\n")
    message = prepare_fails(capsys, str(log))
    assert "line 20002, column 'timestamp': expected a number, got 'yesterday-ish'" in message


def test_non_integer_id_in_a_release_names_line_and_column(tmp_path, capsys):
    folder = write_release("ml-1m", tmp_path)
    lines = (folder / "ratings.dat").read_text().splitlines()
    lines[2] = lines[2].replace("1::20::", "1::x20::")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    message = prepare_fails(capsys, str(folder))
    assert f"{folder / 'ratings.dat'}: line 3, column 'item': expected an integer" in message
    assert "'x20'" in message


def test_wrong_field_count_in_u_data(tmp_path, capsys):
    folder = write_release("ml-100k", tmp_path)
    with (folder / "u.data").open("a") as handle:
        handle.write("7\t8\t5\n")
    message = prepare_fails(capsys, str(folder))
    assert "u.data: line 7: expected 4 fields" in message


def test_wrong_ratings_csv_header(tmp_path, capsys):
    folder = write_release("ml-25m", tmp_path)
    text = (folder / "ratings.csv").read_text().replace("movieId", "itemId", 1)
    (folder / "ratings.csv").write_text(text)
    message = prepare_fails(capsys, str(folder))
    assert "ratings.csv: line 1: expected the header 'userId,movieId,rating,timestamp'" in message


def test_malformed_movies_dat_line(tmp_path, capsys):
    folder = write_release("ml-10m", tmp_path)
    with (folder / "movies.dat").open("a", encoding="latin-1") as handle:
        handle.write("99 Broken line without separators\n")
    message = prepare_fails(capsys, str(folder))
    assert "movies.dat: line 6: expected 'MovieID::Title::Genres'" in message


def test_movies_csv_that_is_not_utf8(tmp_path, capsys):
    folder = write_release("ml-32m", tmp_path)
    (folder / "movies.csv").write_bytes((folder / "movies.csv").read_bytes() + b"9,Caf\xe9,Drama\n")
    message = prepare_fails(capsys, str(folder))
    assert "movies.csv" in message


def test_empty_after_filtering_says_which_option_to_lower(tmp_path, capsys):
    folder = write_release("ml-latest-small", tmp_path)
    message = prepare_fails(capsys, str(folder), "--min-user-interactions", "50")
    assert (
        "no interactions left after filtering" in message and "--min-user-interactions" in message
    )


def test_header_only_log(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n")
    assert "holds no interactions" in prepare_fails(capsys, str(log))


def test_truncated_zip_says_download_again(tmp_path, capsys):
    whole = write_release("ml-1m", tmp_path, as_zip=True)
    cut = tmp_path / "cut" / "ml-1m.zip"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:-200])
    message = prepare_fails(capsys, str(cut))
    assert str(cut) in message and "truncated" in message and "download it again" in message


def test_corrupt_gzip_member(tmp_path, capsys):
    folder = write_release("ml-1m", tmp_path)
    data = gzip.compress((folder / "ratings.dat").read_bytes())
    (folder / "ratings.dat").unlink()
    (folder / "ratings.dat.gz").write_bytes(data[: len(data) // 2])
    message = prepare_fails(capsys, str(folder))
    assert "ratings.dat.gz: cannot be read" in message and "download the release again" in message


def test_text_log_that_is_not_utf8(tmp_path, capsys):
    log = tmp_path / "seq.txt"
    log.write_bytes(b"1 2\n1 \xff\n")
    assert "seq.txt: not UTF-8 text" in prepare_fails(capsys, str(log))


def test_a_bare_ratings_dat_points_to_its_folder(tmp_path, capsys):
    folder = write_release("ml-1m", tmp_path)
    message = prepare_fails(capsys, str(folder / "ratings.dat"))
    assert "looks like a MovieLens ratings.dat; pass the release folder" in message
