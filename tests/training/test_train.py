"""fit(): learns a planted pattern, writes a loadable run directory, resumes exactly, is
deterministic, runs under DDP, fits a final model on everything and warm-starts; run
directories refuse pickled or mismatched files."""

import json
import shutil
import socket

import numpy as np
import polars as pl
import pytest
import torch
from planted import ddp_worker, planted_corpus, tiny_settings
from safetensors.torch import load_file
from tiny_run import make_run_dir

from bert4rec import rundir
from bert4rec.config import OptimSettings
from bert4rec.data.corpus import PrepareSettings, prepare
from bert4rec.data.interactions import Interactions
from bert4rec.data.users import UserHistories
from bert4rec.errors import ModelDirError, SettingsError
from bert4rec.evaluation.protocols import evaluate, model_scorer, train_item_counts
from bert4rec.rundir import corpus_record, load_checkpoint, load_model
from bert4rec.training.loop import fit, learning_rate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus(n_users=500)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "planted"
    return fit(corpus, tiny_settings(epochs=8), run_dir, data={"source": "planted"}, progress=False)


def test_the_step_schedule_divides_the_rate_every_step_epochs():
    step = OptimSettings(lr=1.0, schedule="step", step_epochs=25, step_gamma=0.1)
    assert [learning_rate(step, e * 10, 10, 1000) for e in (0, 24, 25, 50)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.01])


def test_the_warmup_linear_schedule_rises_then_falls_to_zero():
    warm = OptimSettings(lr=1.0, schedule="warmup_linear", warmup_fraction=0.1)
    assert [learning_rate(warm, s, 10, 100) for s in (0, 9, 10, 55, 100)] == pytest.approx(
        [0.1, 1.0, 1.0, 0.5, 0.0])


@pytest.mark.slow
def test_learns_a_planted_sequence_pattern_that_popularity_cannot(trained, corpus):
    assert trained.valid["HR@10"] > 0.9
    assert trained.test["HR@10"] > 0.9 and trained.test["protocol"] == "full"
    counts = torch.from_numpy(train_item_counts(corpus)).float()
    popularity = evaluate(lambda h: counts.expand(len(h), -1), corpus, "valid")
    assert popularity.metrics["HR@10"] < 0.5  # about 10 / (40 - seen items)


@pytest.mark.slow
def test_run_directory_holds_everything_serving_needs(trained, corpus):
    run_dir = trained.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["format_version"] == 1 and config["data"]["source"] == "planted"
    assert config["data"]["corpus"] == corpus_record(corpus)  # what a resume checks
    assert config["model"]["vocab_size"] == corpus.vocab_size
    assert config["train"]["model"]["hidden"] == 64
    model, loaded_config = load_model(run_dir)
    assert loaded_config == config
    histories = torch.from_numpy(corpus.split("test").padded(torch.arange(20).numpy()))
    torch.testing.assert_close(model_scorer(model, "cpu")(histories),
                               model_scorer(trained.model, "cpu")(histories))
    assert (run_dir / "items.parquet").is_file()
    users = UserHistories.read(run_dir / "users.parquet", corpus.n_items)  # users by id
    assert np.array_equal(users.ids, corpus.user_ids)
    assert np.array_equal(users.flat, corpus.items_flat)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_metrics_and_checkpoint_record_every_epoch_and_the_chosen_one(trained):
    metrics = json.loads((trained.run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, 9))
    best = max(metrics["history"], key=lambda h: h["NDCG@10"])
    assert metrics["best_epoch"] == trained.best_epoch == best["epoch"]
    assert metrics["valid"] == best and metrics["valid"]["HR@10"] == trained.valid["HR@10"]
    assert "valid_sample" not in metrics, "500 users are below loop.valid_users: all validated"
    checkpoint = load_checkpoint(trained.run_dir / "checkpoints" / "last.pt")
    assert checkpoint["progress"]["epoch"] == 8


SMALL_RUN = {"loop.seed": 7, "model.dropout": 0.1, "masking.window_shift": 3,
             "model.max_len": 8, "masking.windows_per_sequence": 2}


@pytest.fixture(scope="module")
def small():
    return planted_corpus(n_users=120, seed=3)


@pytest.fixture(scope="module")
def whole(small, tmp_path_factory):
    """An uninterrupted 3-epoch run with dropout and shifting windows."""
    return fit(small, tiny_settings(epochs=3, **SMALL_RUN), tmp_path_factory.mktemp("w") / "run",
               progress=False)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_history(small, whole, tmp_path):
    again = fit(small, tiny_settings(epochs=3, **SMALL_RUN), tmp_path / "again", progress=False)
    assert again.history == whole.history and again.test == whole.test


@pytest.mark.slow
def test_stopping_after_an_epoch_then_resuming_equals_an_uninterrupted_run(small, whole,
                                                                           tmp_path):
    settings = tiny_settings(epochs=3, **SMALL_RUN)
    first = fit(small, settings, tmp_path / "split", stop_after_epoch=1, progress=False)
    assert not first.finished and len(first.history) == 1 and first.test is None
    resumed = fit(small, settings, tmp_path / "split", resume=True, progress=False)
    assert resumed.history == whole.history and resumed.test == whole.test


@pytest.mark.slow
def test_resuming_with_changed_settings_is_refused_naming_them(small, whole):
    changed = tiny_settings(epochs=3, **SMALL_RUN).override({"optim.lr": 0.1})
    with pytest.raises(ModelDirError, match=r"cannot resume with changed settings \['optim\.lr'\]"):
        fit(small, changed, whole.run_dir, resume=True, progress=False)


@pytest.mark.slow
def test_a_checkpoint_keeps_each_ranks_masking_state_and_wants_as_many_ranks(small, whole,
                                                                          tmp_path):
    checkpoint = rundir.load_checkpoint(whole.run_dir / rundir.CHECKPOINT)
    assert len(checkpoint["rng"]["masking"]) == 1  # one state per process that trained it
    shutil.copytree(whole.run_dir, tmp_path / "two")
    checkpoint["rng"]["masking"] *= 2  # as if two DDP processes had written it
    rundir.save_checkpoint(tmp_path / "two" / rundir.CHECKPOINT, checkpoint)
    with pytest.raises(ModelDirError, match=r"\b2 training process.*this run has 1\b"):
        fit(small, tiny_settings(epochs=3, **SMALL_RUN), tmp_path / "two", resume=True,
            progress=False)


@pytest.mark.slow
def test_a_new_run_never_overwrites_an_earlier_one(small, whole):
    with pytest.raises(ModelDirError, match="already holds a run"):
        fit(small, tiny_settings(epochs=3, **SMALL_RUN), whole.run_dir, progress=False)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_on_resume(small, whole, tmp_path):
    settings = tiny_settings(epochs=3, **SMALL_RUN)
    fit(small, settings, tmp_path / "killed", stop_after_epoch=1, progress=False)
    (tmp_path / "killed" / "checkpoints" / "last.pt").unlink()  # as if killed in epoch 1
    restarted = fit(small, settings, tmp_path / "killed", resume=True, progress=False)
    assert restarted.history == whole.history


@pytest.mark.slow
def test_a_checkpoint_from_before_the_weight_average_was_retired_resumes(small, whole, tmp_path):
    settings = tiny_settings(epochs=3, **SMALL_RUN)
    fit(small, settings, tmp_path / "old", stop_after_epoch=1, progress=False)
    path = tmp_path / "old" / rundir.CHECKPOINT
    checkpoint = rundir.load_checkpoint(path)
    checkpoint["settings"]["optim"]["ema_decay"] = 0.0  # what such checkpoints hold
    checkpoint["average"] = {}
    rundir.save_checkpoint(path, checkpoint)
    resumed = fit(small, settings, tmp_path / "old", resume=True, progress=False)
    assert resumed.history == whole.history


@pytest.mark.slow
def test_validation_on_a_user_sample_is_labelled_and_test_scores_every_user(small, tmp_path):
    settings = tiny_settings(epochs=2, **{"loop.valid_users": 30, "loop.seed": 5})
    result = fit(small, settings, tmp_path / "sample", progress=False)
    metrics = json.loads((tmp_path / "sample" / "metrics.json").read_text())
    assert metrics["valid_sample"] == {"users": 30, "split_users": 120, "seed": 5}
    assert "a fixed sample of 30 of 120 users, seed 5" in metrics["selected_by"]
    assert metrics["test"]["users"] == 120 and "split_users" not in metrics["test"]
    chosen = evaluate(model_scorer(result.model, "cpu"), small, "valid", users=30, users_seed=5)
    assert metrics["valid"]["NDCG@10"] == pytest.approx(chosen.metrics["NDCG@10"])
    everyone = evaluate(model_scorer(result.model, "cpu"), small, "valid")
    assert everyone.metrics["NDCG@10"] != pytest.approx(chosen.metrics["NDCG@10"])


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_a_final_model_and_ranks_agree(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(ddp_worker, args=(2, port, str(tmp_path / "run")), nprocs=2)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["valid"]["HR@10"] > 0.5  # popularity is near 0.25 here
    kept = load_file(tmp_path / "run" / "model.safetensors")  # rank 0 wrote the final model
    assert all(torch.equal(kept[k], rank0[k]) for k in kept)
    assert metrics["final"]["epochs"] == metrics["best_epoch"] and metrics["test"]["HR@10"] > 0.5


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path / "run")


def test_pickled_weights_are_refused(run_dir):
    model, _ = load_model(run_dir)
    torch.save(model, run_dir / "model.safetensors")  # a pickle under the right name
    with pytest.raises(ModelDirError, match=r"not a safetensors file.*pickled weights are refused"):
        load_model(run_dir)


def test_a_checkpoint_that_needs_unpickling_code_is_refused(tmp_path):
    torch.save({"x": torch.nn.Linear(2, 2)}, tmp_path / "last.pt")
    with pytest.raises(ModelDirError, match="refused"):
        load_checkpoint(tmp_path / "last.pt")


def test_weights_of_another_shape_than_the_config_are_refused(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    narrower = {**config, "model": {**config["model"], "hidden": 8}}
    (run_dir / "config.json").write_text(json.dumps(narrower))
    with pytest.raises(ModelDirError, match=r"model\.hidden 8 \(the weights have 16\)"):
        load_model(run_dir)


def test_a_config_of_another_format_version_is_refused(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(ModelDirError, match="format_version 2"):
        load_model(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["uniform", "in-batch"])
def test_sampled_softmax_learns_the_planted_pattern_too(corpus, tmp_path, loss):
    settings = tiny_settings(epochs=8, **{"optim.loss": loss, "optim.negatives": 16})
    result = fit(corpus, settings, tmp_path / loss, progress=False)
    assert result.valid["HR@10"] > 0.8


def test_time_budget_stops_after_the_first_epoch_past_it_and_keeps_the_best(corpus, tmp_path):
    seen = []
    settings = tiny_settings(epochs=50, **{"loop.time_budget": 1e-6})
    result = fit(corpus, settings, tmp_path / "budget", progress=False,
                 callback=lambda model, record: seen.append(record))
    assert result.finished and len(result.history) == 1 and result.test is not None
    assert [record["epoch"] for record in seen] == [1] and seen[0]["seconds"] > 0


def last_pair_corpus(n_users: int = 300) -> tuple:
    """Cycle walks that end in a planted pair: (998, 999) for the even users, (996, 997) for
    the odd ones. The pairs are only ever each user's last two items (its validation and test
    items), so only a model that trains on those can learn that 999 follows 998. Returns the
    corpus, the even users (corpus positions) and the vocabulary indices of 998 and 999."""
    rng = np.random.default_rng(5)
    cycle = rng.permutation(30) + 100
    users, items, times = [], [], []
    for user in range(n_users):
        walk = cycle[(rng.integers(30) + np.arange(rng.integers(8, 14))) % 30].tolist()
        walk += [998, 999] if user % 2 == 0 else [996, 997]
        users += [user] * len(walk)
        items += walk
        times += list(range(len(walk)))
    events = pl.DataFrame({"user": users, "item": items, "timestamp": times})
    corpus = prepare(Interactions(events, None, "pairs"), PrepareSettings(min_rating=None))
    even = np.flatnonzero(corpus.user_ids % 2 == 0)
    first, second = (int(np.flatnonzero(corpus.item_ids == i)[0]) + 1 for i in (998, 999))
    return corpus, even, first, second


def partner_share(model, corpus, users, partner) -> float:
    """How often `partner` is the top item after the test history of `users` (which ends with
    the pair's first item)."""
    scores = model_scorer(model, "cpu")(torch.from_numpy(corpus.split("test").padded(users)))
    return (scores.argmax(dim=1) == partner).float().mean().item()


@pytest.mark.slow
def test_a_final_fit_learns_a_pair_seen_only_as_the_last_two_items(tmp_path):
    corpus, even, first, second = last_pair_corpus()
    assert not np.isin([first, second], corpus.split("train").flat).any()
    result = fit(corpus, tiny_settings(epochs=4), tmp_path / "final", progress=False,
                 final=True)
    metrics = json.loads((tmp_path / "final" / "metrics.json").read_text())
    assert metrics["final"]["epochs"] == result.best_epoch == metrics["best_epoch"] >= 1
    assert metrics["final"]["interactions"] == corpus.n_interactions
    assert metrics["figures_of"].startswith("the selection model")
    assert metrics["test"] == result.test and result.final["epochs"] == result.best_epoch
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["fit"] == {"final": True, "holdout": "last-two", "init_from": None}
    model, _ = load_model(tmp_path / "final")
    selection = load_model(tmp_path / "final")[0]
    selection.load_state_dict(load_file(tmp_path / "final" / rundir.SELECTED))
    even_test = np.flatnonzero(np.isin(corpus.split("test").users, even))
    assert partner_share(selection, corpus, even_test, second) < 0.1  # never trained on it
    assert partner_share(model, corpus, even_test, second) > 0.9


@pytest.mark.slow
def test_nothing_held_out_trains_the_given_epochs_on_everything(tmp_path):
    corpus, even, _, second = last_pair_corpus()
    result = fit(corpus, tiny_settings(epochs=4), tmp_path / "all", progress=False,
                 holdout="none")
    metrics = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert metrics["valid"] is None and metrics["test"] is None
    assert metrics["final"]["epochs"] == 4 == len(result.history) and result.test is None
    assert not (tmp_path / "all" / "checkpoints").exists()  # nothing to resume
    model, _ = load_model(tmp_path / "all")
    even_test = np.flatnonzero(np.isin(corpus.split("test").users, even))
    assert partner_share(model, corpus, even_test, second) > 0.9
    with pytest.raises(SettingsError, match="holdout must be one of last-two, none"):
        fit(corpus, tiny_settings(epochs=1), tmp_path / "x", holdout="last")


def test_a_resume_with_another_plan_is_refused(corpus, tmp_path):
    fit(corpus, tiny_settings(epochs=2), tmp_path / "run", progress=False, stop_after_epoch=1)
    with pytest.raises(SettingsError, match=r"another plan .*final False -> True"):
        fit(corpus, tiny_settings(epochs=2), tmp_path / "run", progress=False, resume=True,
            final=True)
