"""One evaluation function for every split and protocol, always labelled.

A *scorer* is any callable taking `histories: LongTensor [B, T]`, left-padded with 0 (the most
recent item at column T - 1), and returning scores `[B, vocab_size]` (float32 or float64). The
model and every baseline are scorers. The evaluator, not the scorer, removes padding (0), [MASK]
and, with `filter_viewed`, every item of the user's history from the candidates;
the target is always a candidate. `model_scorer` makes a trained BERT4Rec a scorer.

Protocols (a `Protocol` names one):
- `full`: the target is ranked against every item (the honest one; Krichene & Rendle, KDD 2020).
- `sampled`: the target is ranked against `n_negatives` items drawn without replacement, never
  the target and, with `filter_viewed`, never a history item, either by popularity in the
  training part (the BERT4Rec paper's protocol, seen items excluded) or uniformly. Draws depend
  only on `seed` and the data, not `batch_size`.
- `cold`: on a corpus with some items held out of training (`evaluation/cold.py`), only the
  users whose target (test, or validation in the hold-out's validation form) is held out,
  ranked among the held-out items (`cold_items`, viewed ones filtered).

Either protocol may score a fixed sample of the split's users instead of every one
(`users`, `users_seed`): model selection on large logs validates that way (`loop.valid_users`),
and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from bert4rec.config import EVAL_BATCH_SIZE
from bert4rec.data.batches import prediction_inputs
from bert4rec.data.corpus import SequenceCorpus, Split
from bert4rec.data.vocab import Vocabulary
from bert4rec.errors import DataError
from bert4rec.evaluation.metrics import DEFAULT_KS, ranking_metrics, target_ranks

Scorer = Callable[[torch.Tensor], torch.Tensor]
PROTOCOLS = ("full", "sampled", "cold")
NEGATIVES = ("popular", "uniform")
EVAL_DEVICE = "auto"
"""Where `bert4rec evaluate` and `Model.evaluate` score a trained model unless told:
`training.runtime.pick_device`'s rule (CUDA, then Apple MPS, then the CPU)."""
SAMPLE_CHUNK = 256
"""Users per negative-sampling draw: fixed so that draws do not depend on `batch_size`."""
SCORES_PER_BATCH = 1 << 27
"""At most this many scores (users x vocab) per batch: a batch holds a few copies of its
[B, V] scores and masks, so `batch_size` is lowered for catalogues above 262k items (to 13
users at 10M items, where 512 would need over 20 GB). Metrics do not depend on the batch
size."""


@dataclass(frozen=True)
class Protocol:
    """How a held-out item is ranked: against every item (`name` "full"), against
    `n_negatives` items drawn by `negatives` ("popular" or "uniform") with `seed` ("sampled"),
    or against the `cold_items` (vocabulary indices) held out of training, for the users whose
    target is one of them ("cold"); with the user's viewed items left out of the candidates
    (`filter_viewed`) or kept; and the cut-offs `ks` of NDCG@k and HR@k. Checked when built."""

    name: Literal["full", "sampled", "cold"] = "full"
    negatives: Literal["popular", "uniform"] = "popular"
    n_negatives: int = 100
    filter_viewed: bool = True
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    cold_items: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.name!r}")
        if (self.name == "cold") != bool(self.cold_items):
            raise ValueError("the cold protocol, and only it, takes cold_items (the items held "
                             "out of training)")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.n_negatives < 1:
            raise ValueError(f"n_negatives must be >= 1, got {self.n_negatives}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"ks must be cut-offs >= 1, got {self.ks!r}")

    @property
    def sampled(self) -> bool:
        return self.name == "sampled"


FULL = Protocol()
"""Full ranking, viewed items filtered: how training selects its epoch and scores test."""


@dataclass(frozen=True)
class EvalReport:
    """The result of one evaluation: what was measured, how, on how many users, and the metrics."""

    protocol: Protocol
    split: str
    users: int
    candidates: int
    """Items ranked per user: the catalogue size (full), n_negatives + 1 (sampled) or the
    held-out items (cold)."""
    metrics: dict[str, float] = field(default_factory=dict)
    split_users: int | None = None
    """Users in the split when only a seeded sample of them (`users`) was scored, else None."""
    users_seed: int | None = None

    def label(self) -> str:
        """One line naming the protocol, e.g. 'sampled (100 popular negatives, seed 0), ...'."""
        p = self.protocol
        if p.sampled:
            how = f"sampled ({p.n_negatives} {p.negatives} negatives, seed {p.seed})"
        elif p.name == "cold":
            how = f"cold items (ranked among the {self.candidates} items held out of training)"
        else:
            how = f"full ranking over {self.candidates} items"
        held = f" whose {self.split} item is held out" if p.name == "cold" else ""
        who = f"{self.users} users{held}"
        if self.split_users is not None:
            who = f"{self.users} of {self.split_users} users (sample, seed {self.users_seed})"
        viewed = "filtered" if p.filter_viewed else "kept"
        return f"{how}, {self.split} split, {who}, viewed items {viewed}"

    def to_dict(self) -> dict[str, str | int | float | bool | None]:
        """Flat JSON-ready dict: protocol, split, filter_viewed, users, then each metric."""
        p = self.protocol
        head: dict[str, str | int | float | bool | None] = {
            "protocol": p.name,
            "split": self.split,
            "filter_viewed": p.filter_viewed,
            "users": self.users,
            "candidates": self.candidates,
        }
        if self.split_users is not None:
            head.update(split_users=self.split_users, users_seed=self.users_seed)
        if p.sampled:
            head.update(negatives=p.negatives, n_negatives=p.n_negatives, seed=p.seed)
        return {**head, **self.metrics}


def model_scorer(model: torch.nn.Module, device: torch.device | str) -> Scorer:
    """A scorer (docs/architecture.md): left-padded histories [B, T] -> scores [B, vocab_size].

    Runs `model` (a `BERT4Rec`, put in eval mode) on `device` without gradients; the scores
    come back as float32 on the histories' device.
    """
    config = model.config

    @torch.no_grad()
    def score(histories: torch.Tensor) -> torch.Tensor:
        model.eval()
        inputs = prediction_inputs(histories.to(device), config.max_len, config.mask_token)
        return model(inputs).float().to(histories.device)  # [B, V]

    return score


def item_counts(data: Split, vocab: Vocabulary) -> np.ndarray:
    """How often each vocab index occurs in the histories of `data` ([vocab.size] int64)."""
    return np.bincount(data.flat, minlength=vocab.size).astype(np.int64)


def train_item_counts(corpus: SequenceCorpus) -> np.ndarray:
    """`item_counts` of the training split (every sequence less its last two items)."""
    return item_counts(corpus.split("train"), corpus.vocab)


def evaluate(
    scorer: Scorer,
    corpus: SequenceCorpus,
    split: str = "test",
    protocol: Protocol = FULL,
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    progress: bool = False,
    users: int = 0,
    users_seed: int = 0,
) -> EvalReport:
    """Rank each user's held-out item with `scorer` under `protocol` and average HR@k, NDCG@k
    and MRR.

    `split` is "valid" (model selection) or "test"; for test the history includes the
    validation item. See the module docstring for the protocols. `users` > 0 scores only a
    sample of that many users (`user_sample(..., users_seed)`) when the split has more.
    `batch_size` users are scored at a time, fewer where that would pass SCORES_PER_BATCH;
    the metrics do not depend on it.
    """
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    if batch_size < 1 or users < 0:
        raise ValueError(f"batch_size must be >= 1 and users >= 0 (0: every user), got "
                         f"{batch_size} and {users}")
    batch_size = min(batch_size, max(1, SCORES_PER_BATCH // corpus.vocab_size))
    data = corpus.split(split)
    eligible = np.arange(len(data))  # the rows of the split this protocol scores
    if protocol.name == "cold":
        cold = torch.zeros(corpus.vocab_size, dtype=torch.bool)
        cold[list(protocol.cold_items)] = True
        eligible = np.flatnonzero(cold.numpy()[data.targets])
        if len(eligible) == 0:
            raise DataError(f"{corpus.name}: no user's {split} item is one of the "
                            f"{len(protocol.cold_items):,} held-out items")
    scored = eligible[user_sample(len(eligible), users, users_seed)]  # [N] ascending
    weights = _sampling_weights(corpus, protocol.negatives) if protocol.sampled else None
    ranks = []
    with (
        torch.inference_mode(),
        tqdm(total=len(scored), desc=f"evaluate {split}", unit="user",
             disable=not progress) as bar,
    ):
        for chunk, start in enumerate(range(0, len(scored), SAMPLE_CHUNK)):
            rows = scored[start : start + SAMPLE_CHUNK]
            allowed = None
            if weights is not None:
                allowed = sample_negatives(data, rows, weights, protocol.n_negatives,
                                           (protocol.seed, chunk), protocol.filter_viewed)
            if protocol.name == "cold":
                allowed = cold.expand(len(rows), -1).clone()
                if protocol.filter_viewed:
                    allowed.scatter_(1, torch.from_numpy(data.padded(rows)), False)
            for batch, part in _batches(rows, batch_size, allowed):
                ranks.append(_rank_batch(scorer, data, batch, corpus.vocab,
                                         protocol.filter_viewed, part))
                bar.update(len(batch))
    sample = len(scored) < len(eligible)
    candidates = {"full": corpus.n_items, "sampled": protocol.n_negatives + 1,
                  "cold": len(protocol.cold_items)}[protocol.name]
    return EvalReport(
        protocol=protocol,
        split=split,
        users=len(scored),
        candidates=candidates,
        metrics=ranking_metrics(torch.cat(ranks), protocol.ks),
        split_users=len(eligible) if sample else None,
        users_seed=users_seed if sample else None,
    )


def user_sample(n_users: int, size: int, seed: int) -> np.ndarray:
    """The rows of a split of `n_users` to score, ascending: every row when `size` is 0 or
    not below `n_users`, else `size` rows drawn without replacement, fixed by `seed` (the same
    users every epoch, so epochs compare on equal terms)."""
    if size == 0 or size >= n_users:
        return np.arange(n_users)
    rng = np.random.default_rng([seed, 0, 2])  # not the sampler's or windows' stream
    return np.sort(rng.choice(n_users, size=size, replace=False))


def _batches(
    rows: np.ndarray, batch_size: int, allowed: torch.Tensor | None
) -> Iterator[tuple[np.ndarray, torch.Tensor | None]]:
    for start in range(0, len(rows), batch_size):
        part = None if allowed is None else allowed[start : start + batch_size]
        yield rows[start : start + batch_size], part


def _rank_batch(
    scorer: Scorer,
    data: Split,
    rows: np.ndarray,
    vocab: Vocabulary,
    filter_viewed: bool,
    allowed: torch.Tensor | None,
) -> torch.Tensor:
    """Ranks of the targets of `rows`: score, mask non-candidates, compare with the target."""
    histories = _padded_histories(data, rows)  # [B, T], left-padded
    scores = scorer(histories)
    if scores.shape != (len(rows), vocab.size) or not scores.is_floating_point():
        raise ValueError(
            f"scorer returned {scores.dtype} {tuple(scores.shape)}; expected floating scores of "
            f"shape [{len(rows)}, {vocab.size}] (one per vocab index, padding and [MASK] included)"
        )
    device = scores.device
    targets = torch.from_numpy(data.targets[rows]).to(device)
    if allowed is not None:
        excluded = ~allowed.to(device)
    else:
        excluded = torch.zeros(scores.shape, dtype=torch.bool, device=device)
        excluded[:, list(vocab.not_items)] = True
        if filter_viewed:
            excluded.scatter_(1, histories.to(device), True)  # padding is already excluded
    return target_ranks(scores, targets, excluded).cpu()


def _padded_histories(data: Split, rows: np.ndarray) -> torch.Tensor:
    """The whole histories of `rows`, left-padded to the power of two at or above the longest
    (at least 8 columns): a long evaluation then allocates a few widths over and over, which
    the C allocator reuses, instead of a new width per batch, which fragments glibc's heap
    (every user of ML-20M-shaped data: 3.7 GiB peak before)."""
    longest = int((data.offsets[rows + 1] - data.offsets[rows]).max(initial=1))
    return torch.from_numpy(data.padded(rows, 1 << max(3, (longest - 1).bit_length())))


def _sampling_weights(corpus: SequenceCorpus, negatives: str) -> torch.Tensor:
    """Per-vocab-index sampling weight: training counts (popular) or 1 per item (uniform)."""
    if negatives == "popular":
        weights = torch.from_numpy(train_item_counts(corpus)).to(torch.float64)
    else:
        weights = torch.ones(corpus.vocab_size, dtype=torch.float64)
    weights[list(corpus.vocab.not_items)] = 0.0
    return weights


def sample_negatives(
    data: Split, rows: np.ndarray, weights: torch.Tensor, n: int, seed: tuple[int, int],
    filter_viewed: bool = True,
) -> torch.Tensor:
    """A [len(rows), vocab_size] bool mask of `n` negatives per user, drawn without replacement
    with probability proportional to `weights`, never the target and, with `filter_viewed`,
    never a history item.

    Gumbel-top-k: the n largest of log(w) + Gumbel noise are a draw without replacement
    proportional to w (Vieira 2014), vectorised over users. `seed` seeds a numpy Generator.
    """
    histories = torch.from_numpy(data.padded(rows))  # [C, T]
    targets = torch.from_numpy(data.targets[rows])  # [C]
    log_w = torch.log(weights).to(torch.float32).expand(len(rows), -1).clone()  # [C, V]
    if filter_viewed:
        log_w.scatter_(1, histories, float("-inf"))
    log_w.scatter_(1, targets[:, None], float("-inf"))
    eligible = torch.isfinite(log_w).sum(dim=1)
    if (short := eligible < n).any():
        raise DataError(
            f"{int(short.sum())} users have fewer than {n} items left to sample as negatives "
            f"(fewest: {int(eligible.min())}); lower n_negatives or use negatives='uniform'"
        )
    uniform = np.random.default_rng(list(seed)).random(log_w.shape, dtype=np.float32)
    gumbel = -torch.log(-torch.log(torch.from_numpy(uniform).clamp_min(1e-30)))
    chosen = (log_w + gumbel).topk(n, dim=1).indices  # [C, n]
    allowed = torch.zeros(log_w.shape, dtype=torch.bool)
    return allowed.scatter_(1, chosen, True)
