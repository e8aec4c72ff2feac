"""`bert4rec train`: flags override the preset, the run is reproducible, mistakes are clear."""

import json
import re

import polars as pl
import pytest
from planted import planted_corpus

from bert4rec.cli import main

TINY = ["--max-len", "16", "--hidden", "32", "--batch-size", "32", "--epochs", "2",
        "--device", "cpu", "--all-ratings", "--min-user-interactions", "3"]


def planted_log(tmp_path):
    corpus = planted_corpus(n_users=80)
    users = [u for u in range(corpus.n_users) for _ in corpus.sequence(u)]
    log = pl.DataFrame({"user": users, "item": corpus.item_ids[corpus.items_flat - 1],
                        "timestamp": list(range(len(users)))})
    path = tmp_path / "log.csv"
    log.write_csv(path)
    return path


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return planted_log(tmp_path_factory.mktemp("log"))


@pytest.fixture(scope="module")
def trained(log, tmp_path_factory):
    """A finished `bert4rec train` run directory (seed 3)."""
    out = tmp_path_factory.mktemp("runs") / "a"
    assert main(["train", str(log), "--out", str(out), "--seed", "3", *TINY]) == 0
    return out


@pytest.mark.slow
def test_train_prints_the_chosen_epoch_and_test_figures(log, tmp_path, capsys):
    assert main(["train", str(log), "--out", str(tmp_path / "run"), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "best epoch" in printed and "test:  NDCG@10" in printed


@pytest.mark.slow
def test_the_same_seed_writes_the_same_metrics(log, trained, tmp_path):
    assert main(["train", str(log), "--out", str(tmp_path / "b"), "--seed", "3", *TINY]) == 0
    assert (tmp_path / "b" / "metrics.json").read_text() == (
        trained / "metrics.json").read_text()


@pytest.mark.slow
def test_config_json_holds_the_effective_settings_and_how_to_rebuild_the_data(log, trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["train"]["model"]["hidden"] == 32 and config["train"]["loop"]["seed"] == 3
    assert config["train"]["optim"]["schedule"] == "warmup_linear"  # the fast preset's
    assert config["data"]["source"] == str(log.resolve())
    assert config["data"]["min_rating"] is None and config["data"]["min_user_interactions"] == 3


@pytest.mark.slow
def test_final_trains_on_everything_and_says_whose_figures_are_shown(log, tmp_path, capsys):
    assert main(["train", str(log), "--out", str(tmp_path / "r"), "--final", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "valid (selection model): NDCG@10" in printed
    assert "final model: " in printed and "each user's last two included" in printed
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["fit"]["final"] and "refit" not in config["train"]["loop"]
    assert (tmp_path / "r" / "checkpoints" / "selected.safetensors").is_file()


@pytest.mark.slow
def test_holdout_none_trains_the_given_epochs_and_prints_no_figures(log, tmp_path, capsys):
    assert main(["train", str(log), "--out", str(tmp_path / "n"), "--holdout", "none",
                 *TINY]) == 0
    printed = capsys.readouterr().out
    assert "final model: 2 epochs on all" in printed and "valid" not in printed.split(
        "run directory")[1]
    assert json.loads((tmp_path / "n" / "metrics.json").read_text())["test"] is None


@pytest.mark.slow
def test_split_by_time_trains_before_the_cut_and_scores_after_it(log, tmp_path, capsys):
    events = pl.read_csv(log)  # every user's n-th event at the same time: users go on past a cut
    events = events.with_columns(
        (pl.int_range(pl.len()).over("user") * 1000 + pl.col("user")).alias("timestamp"))
    log = tmp_path / "interleaved.csv"
    events.write_csv(log)
    cut = int(events["timestamp"].quantile(0.8))
    out = tmp_path / "t"
    assert main(["train", str(log), "--out", str(out), "--split", f"time:{cut}", "--final",
                 *TINY]) == 0
    printed = capsys.readouterr().out
    before = int((events["timestamp"] < cut).sum())
    assert f"{before:,} events before it train, {events.height - before:,} from it" in printed
    later = json.loads((out / "metrics.json").read_text())["later"]
    assert later["split"] == f"time:{cut}" and set(later) == {"split", "final", "selection"}
    assert later["final"]["events"] == events.height - before  # users of the log all stay
    assert later["final"]["users_without_history"] == 0
    assert later["final"]["NDCG@10"] != later["selection"]["NDCG@10"]
    assert "later (time:" in printed and "final: NDCG@10" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["corpus"]["interactions"] <= before


@pytest.mark.parametrize(("flags", "message"), [
    (["--split", "2003-01-01"], r"--split takes time:DATE \(such as time:2003-01-01\)"),
    (["--split", "time:99999999"], "leaves .* events before it and 0 from it"),
    (["--holdout", "none", "--resume"], "--holdout none keeps no checkpoint"),
])
def test_lifecycle_flags_are_checked(log, tmp_path, capsys, flags, message):
    assert main(["train", str(log), "--out", str(tmp_path / "x"), *flags, *TINY]) == 1
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow
def test_evaluate_on_the_run_directory_repeats_the_chosen_validation_figures(trained, capsys):
    assert main(["evaluate", str(trained), "--split", "valid", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    best = json.loads((trained / "metrics.json").read_text())["valid"]
    assert evaluated["NDCG@10"] == pytest.approx(best["NDCG@10"])


@pytest.mark.slow
def test_train_refuses_to_overwrite_a_run(log, trained, capsys):
    assert main(["train", str(log), "--out", str(trained), *TINY]) == 1
    assert "already holds a run; pass --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_refuses_other_settings_and_accepts_the_same(log, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", str(log), "--out", out, *TINY]) == 0
    assert main(["train", str(log), "--out", out, "--resume", *TINY, "--lr", "0.5"]) == 1
    assert "changed settings ['optim.lr']" in capsys.readouterr().err
    assert main(["train", str(log), "--out", out, "--resume", *TINY]) == 0


@pytest.mark.parametrize(("flags", "message"), [
    (["--hidden", "0"], "model.hidden must be in [1, 65536], got 0"),
    (["--mask-prob", "2"], "masking.mask_prob must be in (0, 1], got 2.0"),
    (["--epochs", "0"], "loop.epochs must be >= 1, got 0"),
])
def test_an_invalid_setting_stops_train_with_one_line_before_reading_data(tmp_path, capsys,
                                                                          flags, message):
    missing = tmp_path / "no-such-log.csv"
    assert main(["train", str(missing), "--out", str(tmp_path / "run"), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"bert4rec train: error: {message}"
    assert not (tmp_path / "run").exists()


def item_file(tmp_path, **columns):
    path = tmp_path / "items.csv"
    pl.DataFrame(columns).write_csv(path)
    return path


@pytest.mark.slow
def test_items_file_gives_titles_genres_and_extra_columns(log, tmp_path, capsys):
    items = item_file(tmp_path, item=[100, 101, 102, 999], title=["A (1990)", "B", None, "Z"],
                      genres=["Drama|Comedy", "Drama", "Horror", ""], year=[1990, 1991, 1992, 9])
    out = tmp_path / "run"
    assert main(["train", str(log), "--out", str(out), "--items", str(items), *TINY,
                 "--epochs", "1"]) == 0
    assert f"{items} gives titles for 2 of the 40 items" in capsys.readouterr().out
    table = pl.read_parquet(out / "items.parquet")
    assert table.columns == ["index", "item", "title", "genres", "year"]
    first = table.filter(pl.col("item").is_in([100, 102, 103])).sort("item").to_dicts()
    assert first[0] == {"index": 1, "item": 100, "title": "A (1990)",
                        "genres": ["Drama", "Comedy"], "year": 1990}
    assert first[1]["title"] is None and first[1]["genres"] == ["Horror"]
    assert first[2]["title"] is None and first[2]["year"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["items"] == {"file": str(items.resolve()), "title": "title",
                                       "genres": "genres"}
    assert main(["recommend", str(out), "A (1990)", "--keep-seen", "-k", "40"]) == 0
    assert "Drama|Comedy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("columns", "flags", "message"),
    [
        ({"movie": [100], "title": ["A"]}, [],
         "items.csv: no item column 'item'; it has ['movie', 'title']. The item table names its "
         "items in the same column as the events. Name the right ones with --item-col, "
         "--title-col and --genres-col."),
        ({"item": [100], "name": ["A"]}, [],
         "items.csv: neither a title column 'title' nor a genres column 'genres'; it has "
         "['item', 'name']."),
        ({"item": [100], "name": ["A"]}, ["--title-col", "label"],
         "neither a title column 'label'"),
        ({"item": ["x", "y"], "title": ["A", "B"]}, [],
         "items.csv: none of its 2 item ids is an item of the log (it has 'x', 'y'; the log "
         "100, 101, 102, ...); the item table must use the log's item ids"),
        ({"item": [100, None], "title": ["A", "B"]}, [],
         "items.csv: line 3, column 'item': value is empty"),
        ({"item": [100], "title": ["A"], "index": [5]}, [],
         "items.csv: column 'index' would clash with the item table's own 'index' column"),
    ],
)
def test_a_bad_items_file_is_named_before_training(log, tmp_path, capsys, columns, flags,
                                                   message):
    items = item_file(tmp_path, **columns)
    out = tmp_path / "run"
    assert main(["train", str(log), "--out", str(out), "--items", str(items), *flags,
                 *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bert4rec train: error: ") and message in err, err
    assert not out.exists()


def test_a_missing_items_file_is_named(log, tmp_path, capsys):
    assert main(["train", str(log), "--out", str(tmp_path / "run"), "--items",
                 str(tmp_path / "absent.csv"), *TINY]) == 1
    assert "absent.csv: no such file (expected a CSV, TSV or Parquet item table)" in (
        capsys.readouterr().err)
