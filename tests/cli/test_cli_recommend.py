"""`bert4rec recommend` for known users and for every user: ids typed as the model holds them,
allow and deny lists, --skip-unknown, and tables written whole or not at all."""

import json

import numpy as np
import polars as pl
import pytest
from tiny_run import FILMS, make_run_dir

from bert4rec.cli import main
from bert4rec.data.users import UserHistories

# Users and their histories as original item ids (oldest first).
HISTORIES = {10: [2571, 1214, 1200], 20: [4896, 5816], 30: [1, 260, 1196, 2571, 838]}
INDEX = {film[0]: i for i, film in enumerate(FILMS, start=1)}


def write_users(run, ids):
    histories = [[INDEX[item] for item in history] for history in HISTORIES.values()]
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in histories])])
    flat = np.array([i for h in histories for i in h], dtype=np.int64)
    UserHistories(np.array(ids), flat, offsets.astype(np.int64)).write(run / "users.parquet")
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_users(make_run_dir(tmp_path_factory.mktemp("run")), list(HISTORIES))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """The same model, its users named by text ids that look like numbers."""
    return write_users(make_run_dir(tmp_path_factory.mktemp("run")), ["10", "20", "30"])


def printed_json(capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def one_error(capsys, argv):
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bert4rec recommend: error: "), lines
    return lines[0].removeprefix("bert4rec recommend: error: ")


def test_a_user_gets_what_their_history_gets(run, capsys):
    body = printed_json(capsys, ["recommend", str(run), "--user", "30", "--user", "10",
                                 "-k", "4", "--json"])
    assert [entry["user"] for entry in body] == [30, 10]
    for entry in body:
        history = HISTORIES[entry["user"]]
        assert [h["item"] for h in entry["history"]] == history
        alone = printed_json(capsys, ["recommend", str(run), *(f"id:{i}" for i in history),
                                      "-k", "4", "--json"])
        assert [r["item"] for r in entry["items"]] == [r["item"] for r in alone["items"]]
        assert [r["score"] for r in entry["items"]] == pytest.approx(
            [r["score"] for r in alone["items"]], abs=1e-5)  # batched with another width
        assert len(entry["items"]) == 4
        assert not {r["item"] for r in entry["items"]} & set(history)


def test_users_print_as_one_table_each(run, capsys):
    assert main(["recommend", str(run), "--user", "20", "--user", "10", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "user 20 (2 items in the history)" and lines[5].startswith("user 10 (")
    assert lines[1].split() == ["rank", "title", "genres", "score"] and lines[4] == ""


def test_user_ids_are_typed_as_the_model_holds_them(run, text_run, capsys):
    assert "user 'u1' is not among the 3 users" in one_error(
        capsys, ["recommend", str(run), "--user", "10", "--user", "u1", "--user", "u2"])
    text = printed_json(capsys, ["recommend", str(text_run), "--user", "20", "--json"])
    assert text[0]["user"] == "20"
    message = one_error(capsys, ["recommend", str(text_run), "--user", "40"])
    assert message.startswith("user '40' is not among the 3 users") and "text" in message
    body = printed_json(capsys, ["recommend", str(run), "--user", "u1", "--user", "20",
                                 "--skip-unknown", "--json"])
    assert [entry["user"] for entry in body] == [20]


def test_unknown_titles_are_skipped_only_when_asked(run, capsys):
    assert "no item matches title 'Nonexistent Film'" in one_error(
        capsys, ["recommend", str(run), "Alien", "Nonexistent Film"])
    body = printed_json(capsys, ["recommend", str(run), "Alien", "Nonexistent Film",
                                 "--skip-unknown", "--json"])
    assert [h["item"] for h in body["history"]] == [1214]


def test_allow_and_deny_lists(run, tmp_path, capsys):
    allowed, denied = tmp_path / "allowed.txt", tmp_path / "denied.txt"
    allowed.write_text("1\n\n260\n2571\n838\n")
    denied.write_text("260\n")
    body = printed_json(capsys, ["recommend", str(run), "--user", "10", "--items-from",
                                 str(allowed), "--exclude-from", str(denied), "--json"])
    assert {r["item"] for r in body[0]["items"]} == {1, 838}  # 2571 seen, 260 denied
    everything = printed_json(capsys, ["recommend", str(run), "--user", "10", "-k", "20",
                                       "--exclude-from", str(denied), "--json"])
    assert len(everything[0]["items"]) == len(FILMS) - 3 - 1


def test_an_unknown_id_in_a_list_names_the_file_and_line(run, tmp_path, capsys):
    listed = tmp_path / "allowed.txt"
    listed.write_text("1\n260\nabc\n99999\n")
    message = one_error(capsys, ["recommend", str(run), "--user", "10", "--items-from",
                                 str(listed)])
    assert message == (f"{listed}, line 3: item 'abc' is not among the model's 14 items (nor "
                       "are 1 more); --skip-unknown leaves unknown items out")
    body = printed_json(capsys, ["recommend", str(run), "--user", "10", "--items-from",
                                 str(listed), "--skip-unknown", "--json"])
    assert {r["item"] for r in body[0]["items"]} == {1, 260}
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert one_error(capsys, ["recommend", str(run), "--user", "10", "--exclude-from",
                              str(empty)]) == f"{empty}: no item ids; expected one item id per line"
    assert one_error(capsys, ["recommend", str(run), "--user", "10", "--exclude-from",
                              str(tmp_path / "absent.txt")]).endswith(
        "absent.txt: No such file or directory")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_all_users_to_a_file(run, tmp_path, capsys, suffix):
    out = tmp_path / f"recs{suffix}"
    assert main(["recommend", str(run), "--all-users", "-k", "3", "--output", str(out)]) == 0
    assert "wrote recommendations for 3 users" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left
    recs = pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out)
    assert recs.columns == ["user", "rank", "item", "score", "title", "genres"]
    assert recs["user"].to_list() == [10] * 3 + [20] * 3 + [30] * 3
    assert recs["rank"].to_list() == [1, 2, 3] * 3
    body = printed_json(capsys, ["recommend", str(run), "--user", "30", "-k", "3", "--json"])
    assert recs.filter(pl.col("user") == 30)["item"].to_list() == [
        r["item"] for r in body[0]["items"]]
    first = body[0]["items"][0]
    row = recs.filter(pl.col("user") == 30).row(0, named=True)
    assert row["title"] == first["title"]
    assert row["genres"] == (first["genres"] if suffix == ".parquet" else "|".join(first["genres"]))


def test_refusals_come_before_any_work(run, tmp_path, capsys):
    out = tmp_path / "recs.xlsx"
    assert one_error(capsys, ["recommend", str(run), "--all-users", "--output", str(out)]) == (
        f"{out}: unknown output format '.xlsx'; expected a file ending in .parquet, .pq, .csv, "
        ".tsv")
    assert "--all-users writes a file: add --output" in one_error(
        capsys, ["recommend", str(run), "--all-users"])
    assert "not TITLE and --user" in one_error(
        capsys, ["recommend", str(run), "Alien", "--user", "10"])
    assert "one of them" in one_error(capsys, ["recommend", str(run)])
    assert "--explain changes what is printed" in one_error(
        capsys, ["recommend", str(run), "--user", "10", "--explain", "--output",
                 str(tmp_path / "r.csv")])
    out = tmp_path / "recs.parquet"
    assert "user 'u9' is not among" in one_error(
        capsys, ["recommend", str(run), "--user", "u9", "--output", str(out)])
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_users_says_what_to_do(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run")
    assert "users.parquet is missing" in one_error(capsys, ["recommend", str(run), "--user", "1"])


def test_a_user_id_written_as_a_title_gets_a_hint(run, text_run, capsys):
    message = one_error(capsys, ["recommend", str(run), "20"])
    assert message.startswith("no item is titled '20'; item ids are written 'id:ID'")
    assert message.endswith("'20' is a user of the training log: write --user 20 to recommend "
                            "for that user")
    assert "is a user" not in one_error(capsys, ["recommend", str(run), "21"])
    assert "write --user 30" in one_error(capsys, ["recommend", str(text_run), "30"])
