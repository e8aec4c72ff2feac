"""`bert4rec recommend / similar / serve / demo` on the command line."""

import json

import polars as pl
import pytest
from tiny_run import make_run_dir

from bert4rec.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return str(make_run_dir(tmp_path_factory.mktemp("run")))


@pytest.mark.parametrize("command", ["recommend", "similar", "serve", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: bert4rec " + command in capsys.readouterr().out


def test_recommend_json_with_titles_and_ids(run, capsys):
    assert main(["recommend", run, "Harry Potter and the Chamber of Secrets (2002)", "id:4896",
                 "-k", "3", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [h["item"] for h in body["history"]] == [5816, 4896]
    assert [r["rank"] for r in body["items"]] == [1, 2, 3]
    assert set(body["items"][0]) == {"rank", "item", "title", "genres", "score", "because"}


def test_recommend_table_with_explanations(run, capsys):
    assert main(["recommend", run, "The Matrix", "Alien", "--explain", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "title", "genres", "score"]
    assert lines[1].lstrip().startswith("1  ") and "because:" in lines[2]
    assert len(lines) == 5


def test_unknown_title_fails_with_candidates(run, capsys):
    assert main(["recommend", run, "Aliens (1990)"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bert4rec recommend: error: no item matches title 'Aliens (1990)'")
    assert "Aliens (1986) [id 1200]" in err


def test_similar(run, capsys):
    assert main(["similar", run, "id:2571", "-k", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["history"][0]["title"] == "Matrix, The (1999)" and len(body["items"]) == 2


def test_control_characters_in_titles_never_reach_the_terminal(tmp_path, capsys):
    """Issue 14: an ANSI/OSC escape sequence in a title is printed without its control
    characters, in the table and in error messages alike."""
    run = make_run_dir(tmp_path / "run")
    hostile = "\x1b]0;owned\x07Evil\x1b[2J\u202e (1999)"
    items = pl.read_parquet(run / "items.parquet").with_columns(
        pl.when(pl.col("item") == 2571).then(pl.lit(hostile)).otherwise(pl.col("title"))
        .alias("title"))
    items.write_parquet(run / "items.parquet")
    assert main(["recommend", str(run), "id:1", "-k", "14", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "]0;ownedEvil[2J (1999)" in out
    assert not any(c in out for c in "\x1b\x07\u202e")
    assert main(["recommend", str(run), "Evil\x1b[2J"]) == 1
    err = capsys.readouterr().err
    assert "closest: ]0;ownedEvil[2J (1999) [id 2571]" in err
    assert not any(c in err for c in "\x1b\x07\u202e")
