"""The `small` recipe learns item-to-item regularities from a few users each (issue 13)."""

import numpy as np
import pytest
import torch
from planted import paired_corpus

from bert4rec.config import auto_preset, preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.evaluation.protocols import model_scorer, train_item_counts
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime

EPOCHS = 40  # 200 steps of 32 windows: a few seconds


@pytest.fixture(scope="module")
def pairs():
    """The paired corpus, its probe users' test histories [P, T] (each ending on item a) and
    test targets [P] (each a's partner b)."""
    corpus = paired_corpus()
    test = corpus.split("test")
    probes = np.flatnonzero(corpus.user_ids[test.users] >= 10_000)
    return corpus, torch.from_numpy(test.padded(probes)), test.targets[probes]


def partner_hit_rate(scores: torch.Tensor, histories: torch.Tensor, targets: np.ndarray) -> float:
    """Share of probes whose partner item is among the 10 best-scored unseen items."""
    scores = scores.double().clone()
    scores[:, [0, -1]] = -np.inf  # padding, [MASK]
    scores.scatter_(1, histories, -np.inf)  # seen items
    top = scores.topk(10, dim=1).indices.numpy()  # [P, 10]
    return float(np.mean([target in row for target, row in zip(targets, top, strict=True)]))


def trained_hit_rate(pairs, **changes) -> float:
    corpus, histories, targets = pairs
    torch.set_num_threads(1)
    settings = preset("small").override({"loop.epochs": EPOCHS, "loop.device": "cpu", **changes})
    run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
    for _ in range(EPOCHS):
        run.run_epoch()
    return partner_hit_rate(model_scorer(run.model, "cpu")(histories), histories, targets)


@pytest.mark.slow
def test_small_recipe_ranks_each_items_partner_in_the_top_10(pairs):
    assert trained_hit_rate(pairs) >= 0.7


def test_popularity_does_not_find_the_partners(pairs):
    corpus, histories, targets = pairs
    counts = torch.from_numpy(train_item_counts(corpus)).expand(len(histories), -1)
    assert partner_hit_rate(counts, histories, targets) < 0.1


@pytest.mark.slow
def test_without_the_cooccurrence_start_the_same_short_run_does_not(pairs):
    rate = trained_hit_rate(pairs, **{"optim.item_init": "random", "optim.item_lr": 1.0})
    assert rate < 0.3


@pytest.mark.realdata
@pytest.mark.parametrize(("source", "settings", "expected"), [
    ("ml-latest-small", PrepareSettings(), "small"),  # 48,562 ratings >= 4
    ("ml-100k", PrepareSettings(min_rating=None), "small"),  # 100,000
    ("ml-1m/ml-1m.txt", PrepareSettings(min_rating=None, min_user_interactions=0), "causal"),
    ("amazon-beauty/Beauty.txt", PrepareSettings(), "short"),  # 8.9 per user
])
def test_auto_picks_the_preset_measured_best_for_each_benchmark(data_dir, source, settings,
                                                                 expected):
    corpus = load_corpus(data_dir / source, settings)
    assert auto_preset(corpus.n_interactions, corpus.n_users, corpus.n_items) == expected
