"""`bert4rec baseline` and `evaluate`: --json keys, the labelled table, options reach evaluate()."""

import json

import pytest
import torch
from tiny_corpus import tiny_corpus

from bert4rec.cli import main
from bert4rec.evaluation.protocols import evaluate

# Same log as tests/test_baselines.py: popularity ranks the test targets 1, 3, 5 with seen
# items kept and 1, 1, 1 with them excluded.
SEQUENCES = [[1, 2, 3, 1, 2], [2, 3, 1, 4, 3], [1, 2, 5, 3, 4], [2, 3]]


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "log.csv"
    rows = [f"{u},{item},{t}" for u, seq in enumerate(SEQUENCES) for t, item in enumerate(seq)]
    path.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    return path


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_baseline_json_has_protocol_split_seen_policy_users_and_metrics(capsys, log_file, tmp_path):
    record = run_json(
        capsys,
        "baseline",
        "popular",
        str(log_file),
        "--min-user-interactions",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    )
    assert list(record) == [
        "scorer",
        "protocol",
        "split",
        "filter_viewed",
        "users",
        "candidates",
        "NDCG@1",
        "HR@1",
        "NDCG@5",
        "HR@5",
        "NDCG@10",
        "HR@10",
        "NDCG@20",
        "HR@20",
        "MRR",
    ]
    assert record["scorer"] == "popular" and record["protocol"] == "full"
    assert record["split"] == "test" and record["filter_viewed"] is True
    assert record["users"] == 3 and record["MRR"] == 1.0


COMMON = ["--min-user-interactions", "0", "--no-cache", "--json"]


def test_baseline_keep_seen_option_keeps_history_items_as_candidates(capsys, log_file):
    kept = run_json(capsys, "baseline", "popular", str(log_file), *COMMON, "--keep-seen",
                    "--ks", "3")
    assert kept["filter_viewed"] is False
    assert kept["HR@3"] == pytest.approx(2 / 3)
    assert kept["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 5) / 3)


def test_baseline_split_option_ranks_the_validation_item(capsys, log_file):
    valid = run_json(capsys, "baseline", "markov", str(log_file), *COMMON, "--split", "valid",
                     "--ks", "1")
    assert valid["split"] == "valid" and valid["HR@1"] == pytest.approx(2 / 3)


def test_baseline_sampled_json_names_negatives_and_seed(capsys, log_file):
    record = run_json(
        capsys,
        "baseline",
        "markov",
        str(log_file),
        "--min-user-interactions",
        "0",
        "--no-cache",
        "--json",
        "--protocol",
        "sampled",
        "--negatives",
        "uniform",
        "--n-negatives",
        "1",
        "--seed",
        "4",
        "--split",
        "valid",
    )
    assert (record["protocol"], record["negatives"]) == ("sampled", "uniform")
    assert (record["n_negatives"], record["seed"], record["candidates"]) == (1, 4, 2)


def test_baseline_table_is_labelled(capsys, log_file):
    assert (
        main(
            [
                "baseline",
                "popular",
                str(log_file),
                "--min-user-interactions",
                "0",
                "--no-cache",
                "--ks",
                "1,10",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("popular: full ranking over 5 items, test split, 3 users, viewed items "
                      "filtered")
    assert out[1].split() == ["k", "NDCG@k", "HR@k"]
    assert [line.split()[0] for line in out[2:]] == ["1", "10", "MRR"]


@pytest.mark.parametrize(("args", "message"), [
    (["popular", "--ks", "ten"], "--ks wants comma-separated integers, got 'ten'"),
    (["popular", "--n-negatives", "0"], "must be >= 1, got 0"),
    (["pop"], "invalid choice: 'pop'"),
])
def test_a_bad_option_or_unknown_baseline_is_a_usage_error(capsys, log_file, args, message):
    name, *options = args
    with pytest.raises(SystemExit) as exit_info:
        main(["baseline", name, str(log_file), *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_too_many_sampled_negatives_is_a_one_line_error(capsys, log_file):
    assert (
        main(
            [
                "baseline",
                "popular",
                str(log_file),
                "--min-user-interactions",
                "0",
                "--no-cache",
                "--protocol",
                "sampled",
                "--n-negatives",
                "3",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "3 users have fewer than 3 items left to sample as negatives (fewest: 0)" in err
    assert "lower n_negatives" in err


@pytest.mark.parametrize("command", ["baseline", "evaluate"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--keep-seen" in capsys.readouterr().out


def tiny_run_dir(tmp_path, source, vocab_size=7):
    """A run directory holding an untrained, seeded BERT4Rec and how to rebuild its corpus."""
    from bert4rec import rundir
    from bert4rec.model import BERT4Rec, BERT4RecConfig

    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=vocab_size, max_len=4, hidden=8, heads=2))
    run = tmp_path / "run"
    data = {"source": str(source), "min_rating": None, "min_item_interactions": 0,
            "min_user_interactions": 0}
    rundir.write_config(run, model.config, data, {})
    rundir.save_weights(model, run / rundir.WEIGHTS)
    return run, model.eval()


def test_evaluate_run_dir_matches_evaluate_on_the_same_model(capsys, log_file, tmp_path):
    from bert4rec.evaluation.protocols import model_scorer

    run, model = tiny_run_dir(tmp_path, log_file)
    record = run_json(capsys, "evaluate", str(run), "--device", "cpu", "--json", "--split",
                      "valid", "--cache-dir", str(tmp_path / "cache"))
    expected = evaluate(model_scorer(model, "cpu"), tiny_corpus(SEQUENCES), "valid")
    assert record == {"scorer": "run", **expected.to_dict()}
    assert record["protocol"] == "full" and record["filter_viewed"] is True


def test_evaluate_run_dir_refuses_a_corpus_of_another_vocabulary(capsys, log_file, tmp_path):
    run, _ = tiny_run_dir(tmp_path, log_file, vocab_size=9)
    assert main(["evaluate", str(run), "--device", "cpu", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "vocab_size 9 but the rebuilt corpus has 7" in err and "--source" in err
