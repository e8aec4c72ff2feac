"""Cold items (issue 25): holding items out of training, the `cold` protocol that ranks a
held-out test item among the held-out items, its baselines, and a model that learns to place
never-seen items from their features alone."""

import numpy as np
import polars as pl
import pytest
import torch
from planted import tiny_settings
from tiny_corpus import tiny_corpus

from bert4rec.data.corpus import PrepareSettings, prepare
from bert4rec.data.features import ItemFeatures
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError
from bert4rec.evaluation.cold import CategoryPopular, RandomItems, hold_out_items
from bert4rec.evaluation.protocols import Protocol, evaluate, model_scorer


def genre_corpus(n_users: int = 600, n_items: int = 80, groups: int = 4, seed: int = 0):
    """Users who each stay within one genre (item id % groups), picking its items at random:
    the next item's genre is the history's, nothing else is predictable."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        genre = rng.integers(groups)
        members = np.arange(genre, n_items, groups) + 1
        for t, item in enumerate(rng.choice(members, size=rng.integers(6, 12))):
            rows.append((user, int(item), t))
    events = pl.DataFrame(rows, schema={"user": pl.Int64, "item": pl.Int64,
                                        "timestamp": pl.Int64}, orient="row")
    items = pl.DataFrame({"item": np.arange(1, n_items + 1), "title": None,
                          "genres": [[f"g{(i - 1) % groups}"] for i in range(1, n_items + 1)]},
                         schema={"item": pl.Int64, "title": pl.String,
                                 "genres": pl.List(pl.String)})
    corpus = prepare(Interactions(events, None, "genres"), PrepareSettings(min_rating=None))
    return corpus.with_items(items)


def test_held_out_items_are_never_trained_on_and_only_ever_a_last_item():
    corpus = genre_corpus()
    cold = hold_out_items(corpus, share=0.1, seed=7)
    assert len(cold.items) == 8 and cold.items.tolist() == sorted(set(cold.items.tolist()))
    held = np.zeros(corpus.vocab_size, dtype=bool)
    held[cold.items] = True
    for split in ("train", "train+valid"):
        assert not held[cold.corpus.split(split).flat].any()
    new = cold.corpus
    for user in range(new.n_users):
        sequence = new.sequence(user)
        assert not held[sequence[:-1]].any()
        if held[sequence[-1]]:
            assert len(sequence) >= 3  # evaluable: the held-out item is its test target
    expected = sum(held[corpus.sequence(u)[-1]] and (~held[corpus.sequence(u)]).sum() >= 2
                   for u in range(corpus.n_users))
    assert int(held[new.split("test").targets].sum()) == expected > 0
    assert new.item_table.equals(corpus.item_table)  # the items stay, with their features


def test_a_user_left_with_nothing_is_dropped_and_one_with_one_item_loses_its_cold_last():
    corpus = tiny_corpus([[1, 2, 3, 4], [2, 1], [1, 1, 3], [2, 3, 4, 1, 4]])
    cold = hold_out_items(corpus, share=0.25, seed=0)
    (item,) = cold.items.tolist()
    sequences = {int(corpus.user_ids[u]): [i for i in corpus.sequence(u).tolist()]
                 for u in range(corpus.n_users)}
    kept = {int(cold.corpus.user_ids[u]): cold.corpus.sequence(u).tolist()
            for u in range(cold.corpus.n_users)}
    for user, sequence in sequences.items():
        warm = [i for i in sequence if i != item]
        keep_last = sequence[-1] == item and len(warm) >= 2
        if not warm:
            assert user not in kept
        else:
            assert kept[user] == warm + ([item] if keep_last else [])


def test_the_cold_protocol_ranks_the_target_among_the_unseen_held_out_items():
    corpus = genre_corpus()
    cold = hold_out_items(corpus, share=0.1, seed=7)
    lowest_first = lambda histories: -torch.arange(corpus.vocab_size, dtype=torch.float32  # noqa: E731
                                                   ).expand(len(histories), -1)
    report = evaluate(lowest_first, cold.corpus, "test", cold.protocol(ks=(1, 10)))
    data = cold.corpus.split("test")
    rows = np.flatnonzero(np.isin(data.targets, cold.items))
    ranks = [1 + int((cold.items < data.targets[r]).sum()) for r in rows]  # none is ever seen
    assert report.users == len(rows)
    assert report.metrics["HR@1"] == pytest.approx(np.mean([r == 1 for r in ranks]))
    assert report.metrics["MRR"] == pytest.approx(np.mean([1 / r for r in ranks]))
    assert report.candidates == 8
    assert report.label() == (f"cold items (ranked among the 8 items held out of training), "
                              f"test split, {len(rows)} users whose test item is held out, "
                              "viewed items filtered")
    assert report.to_dict()["protocol"] == "cold"
    with pytest.raises(DataError, match=r"no user's valid item is one of the 8 held-out"):
        evaluate(lowest_first, cold.corpus, "valid", cold.protocol())
    with pytest.raises(DataError, match=r"\bthe 1 held-out items\b"):
        evaluate(lowest_first, cold.corpus, "test", Protocol(name="cold", cold_items=(0,)))


def test_the_validation_form_keeps_a_held_out_item_only_as_a_validation_target():
    corpus = genre_corpus()
    test, valid = (hold_out_items(corpus, share=0.1, seed=7, split=s) for s in ("test", "valid"))
    assert valid.items.tolist() == test.items.tolist() and valid.split == "valid"
    held = np.zeros(corpus.vocab_size, dtype=bool)
    held[valid.items] = True
    new = valid.corpus
    assert not held[new.split("train").flat].any()
    for user in range(new.n_users):
        sequence = new.sequence(user)
        assert not held[sequence[-1]] and not held[sequence[:-2]].any()
        if held[sequence[-2]]:
            assert len(sequence) >= 4  # a validation history of at least two items
    expected = 0
    for u in range(corpus.n_users):
        sequence = corpus.sequence(u)
        expected += bool(len(sequence) >= 2 and held[sequence[-2]] and not held[sequence[-1]]
                         and (~held[sequence]).sum() >= 3)
    lowest_first = lambda histories: -torch.arange(corpus.vocab_size, dtype=torch.float32  # noqa: E731
                                                   ).expand(len(histories), -1)
    report = evaluate(lowest_first, new, "valid", valid.protocol())
    assert report.users == expected > 0
    assert "valid split" in report.label() and "whose valid item is held out" in report.label()
    with pytest.raises(DataError, match=r"no user's test item is one of the 8 held-out"):
        evaluate(lowest_first, new, "test", valid.protocol())
    with pytest.raises(ValueError, match=r"split must be 'valid' or 'test', got 'train'"):
        hold_out_items(corpus, split="train")


def test_the_validation_form_on_a_hand_made_corpus():
    corpus = tiny_corpus([[1, 2, 3, 4], [2, 3, 1, 4], [3, 1, 2, 1, 4], [2, 1, 3], [1, 3, 4, 1]])
    cold = hold_out_items(corpus, share=0.25, seed=0, split="valid")
    (item,) = cold.items.tolist()
    kept = {int(cold.corpus.user_ids[u]): cold.corpus.sequence(u).tolist()
            for u in range(cold.corpus.n_users)}
    for u in range(corpus.n_users):
        sequence = corpus.sequence(u).tolist()
        warm = [i for i in sequence if i != item]
        keep = sequence[-2] == item and sequence[-1] != item and len(warm) >= 3
        expected = [*warm[:-1], item, warm[-1]] if keep else warm
        assert kept[int(corpus.user_ids[u])] == expected
    assert item == 1 and sum(item in sequence for sequence in kept.values()) == 2


def test_category_popular_counts_the_users_categories_then_their_popularity():
    values = np.array([[0, 0], [2, 0], [2, 3], [3, 0], [4, 0], [0, 0]])  # items 1-4
    scorer = CategoryPopular(values, value_popularity=np.array([0.0, 0.0, 10.0, 30.0, 50.0]))
    scores = scorer(torch.tensor([[0, 1, 2], [0, 0, 4]]))
    tie = np.array([0.0, 10.0, 20.0, 30.0, 50.0, 0.0]) / 51.0  # the mean popularity of values
    expected = np.array([[0, 2, 3, 1, 0, 0], [0, 0, 0, 0, 1, 0]]) + tie
    np.testing.assert_allclose(scores.numpy(), expected)


def test_random_items_scores_at_chance_and_category_popular_finds_the_genre():
    corpus = genre_corpus()
    cold = hold_out_items(corpus, share=0.1, seed=7)
    features = ItemFeatures.from_items(corpus.item_table, "genres", corpus.vocab_size)
    chance = evaluate(RandomItems(corpus.vocab_size), cold.corpus, "test", cold.protocol((2,)))
    genre = evaluate(CategoryPopular.fit(cold.corpus, features), cold.corpus, "test",
                     cold.protocol((2,)))
    assert chance.metrics["HR@2"] < 0.45  # 2 of 8 by chance
    assert genre.metrics["HR@2"] == 1.0  # seed 7 holds out two items of each genre


def cold_genre_run(out, epochs: int, **changes):
    """A tiny model with genres trained on `genre_corpus` less 10% of its items (hold-out seed
    7), and its HR@2 on the cold protocol: the trained model and that figure."""
    from bert4rec.training.loop import fit

    cold = hold_out_items(genre_corpus(), share=0.1, seed=7)
    settings = tiny_settings(epochs=epochs, **{"model.item_features": "genres", **changes})
    result = fit(cold.corpus, settings, out, progress=False)
    report = evaluate(model_scorer(result.model, "cpu"), cold.corpus, "test",
                      cold.protocol((2,)))
    return result.model, report.metrics["HR@2"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_model_with_features_places_items_it_never_saw_by_their_genre(tmp_path):
    _, hit_rate = cold_genre_run(tmp_path / "run", 6, **{"model.id_dropout": 0.3})
    assert hit_rate > 0.8  # chance: 0.25


@pytest.mark.parametrize("loss", ["full", "uniform"])
def test_the_feature_loss_adds_the_same_loss_over_features_only_item_vectors(loss):
    from bert4rec.config import preset
    from bert4rec.training.loop import TrainingRun
    from bert4rec.training.runtime import Runtime

    corpus = genre_corpus(n_users=60)
    runs = {}
    for weight in (0.0, 0.5):
        settings = preset("fast").override({
            "loop.device": "cpu", "model.item_features": "genres", "model.id_dropout": 0.0,
            "optim.loss": loss, "optim.negatives": 16, "optim.feature_loss": weight})
        torch.manual_seed(0)
        runs[weight] = TrainingRun(corpus, settings, Runtime(torch.device("cpu")),
                                   show_progress=False)
        runs[weight].model.eval()  # no dropout: both see the same network
    inputs, labels = next(iter(runs[0.0].loader))
    losses = {}
    for weight, run in runs.items():
        torch.manual_seed(1)  # the same sampled negatives for the main loss
        losses[weight] = run.loss(inputs, labels)
    run = runs[0.5]
    features = run.model.encoder.embeddings.features
    vectors, bias = features.alone()
    with torch.no_grad():
        assert torch.allclose(vectors[1], features.values.weight[features.item_values[1, 0]])
        hidden = run.model(inputs, labels != 0, project=False)
        logits = hidden @ vectors.T + bias
        logits[:, [0, corpus.mask_token]] = float("-inf")
        alone = torch.nn.functional.cross_entropy(logits, labels[labels != 0])
    if loss == "full":  # the exact extra term
        assert losses[0.5].item() == pytest.approx(losses[0.0].item() + 0.5 * alone.item(),
                                                   rel=1e-5)
    else:  # its own sampled negatives: more than the main loss, and in alone's range
        assert losses[0.5].item() > losses[0.0].item() + 0.1


def test_the_feature_loss_is_refused_below_zero():
    from bert4rec.config import preset
    from bert4rec.errors import SettingsError

    with pytest.raises(SettingsError, match="feature_loss"):
        preset("fast").override({"optim.feature_loss": -1.0})


def reference_matches(histories: torch.Tensor, item_values: torch.Tensor,
                      weight: torch.Tensor) -> torch.Tensor:
    """[N, V]: for each row, the sum over each item's values of weight * log(1 + how many of
    the row's history items have the value), by loops."""
    out = torch.zeros(len(histories), len(item_values))
    for n, history in enumerate(histories.tolist()):
        held = [v for item in history for v in item_values[item].tolist() if v]
        for item, values in enumerate(item_values.tolist()):
            out[n, item] = sum(weight[v] * np.log1p(held.count(v)) for v in values if v)
    return out


@pytest.mark.parametrize("feature_loss", [0.0, 0.5])
@pytest.mark.parametrize("fused_up_to", [64, 0])  # value columns beside the states, or logits
def test_training_adds_the_feature_matches_to_every_items_logit(feature_loss, fused_up_to,
                                                                 monkeypatch):
    monkeypatch.setattr("bert4rec.model.INCIDENCE_COLUMNS", fused_up_to)
    from bert4rec.config import preset
    from bert4rec.training.loop import TrainingRun
    from bert4rec.training.runtime import Runtime

    corpus = genre_corpus(n_users=60)
    settings = preset("fast").override({
        "loop.device": "cpu", "model.item_features": "genres", "model.id_dropout": 0.0,
        "model.feature_match": True, "optim.feature_loss": feature_loss})
    run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
    model = run.model.eval()  # no dropout
    features = model.encoder.embeddings.features
    with torch.no_grad():
        model.feature_match.weight.normal_()
    inputs, labels = next(iter(run.loader))
    loss = run.loss(inputs, labels)
    rows = (labels != 0).nonzero(as_tuple=True)[0]
    matches = reference_matches(inputs[rows], features.item_values, model.feature_match.weight)
    with torch.no_grad():
        hidden = model(inputs, labels != 0, project=False)
        expected = torch.nn.functional.cross_entropy(
            model.score(hidden) + matches, labels[labels != 0])
        vectors, bias = features.alone()
        alone = hidden @ vectors.T + bias + matches
        alone[:, [0, corpus.mask_token]] = float("-inf")
        expected += feature_loss * torch.nn.functional.cross_entropy(alone, labels[labels != 0])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.feature_match.weight.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_feature_matches_place_never_seen_items_by_the_genre_of_the_history(tmp_path):
    model, hit_rate = cold_genre_run(tmp_path / "run", 1, **{"model.feature_match": True})
    assert hit_rate > 0.8  # chance: 0.25
    weights = model.feature_match.weight.detach()  # started at 0
    assert (weights[2:] > 0.02).all(), weights  # a shared genre (values 2-5) raises the score
