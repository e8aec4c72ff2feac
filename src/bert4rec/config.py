"""Typed training settings, the named presets and the `auto` rule that picks one from the data.

A `Settings` is four small sections (model, masking, optim, loop). Every field carries its
help text, and its allowed values where they are limited, in its metadata: the CLI builds one
flag per field from them, docs/configuration.md documents the same defaults and ranges (a test
keeps them equal), and every section checks its values when it is built, so a `Settings` that
exists is a valid one. Presets are plain instances, never executed files. `ModelSettings` is
the network's shape; `bert4rec.model.BERT4RecConfig` is that shape plus the vocabulary size,
which comes from data. The data settings (filters) belong to the corpus.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from bert4rec.errors import SettingsError
from bert4rec.evaluation.metrics import metric_names


@dataclass(frozen=True)
class Interval:
    """The numbers a setting allows: from `low` to `high` (None: unbounded), each end
    included unless marked open."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        if self.high is None:
            return above
        return above and (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low}, {self.high}{right}"


@dataclass(frozen=True)
class Pattern:
    """The strings a setting allows: those matching `regex` in full, described in words."""

    regex: str
    words: str

    def __contains__(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None

    def __str__(self) -> str:
        return self.words


AT_LEAST_ONE = Interval(1)
NOT_NEGATIVE = Interval(0)
POSITIVE = Interval(0, low_open=True)
SHARE = Interval(0, 1)
BELOW_ONE = Interval(0, 1, high_open=True)
COLUMN_LIST = Pattern(r"|auto|[^,\s][^,]*(,[^,\s][^,]*)*",
                      "empty (none), auto, or comma-separated column names")
BATCH = Interval(1, 1_048_576)
"""A batch of at most 2^20 sequences: far above what any memory holds at a useful length."""
DEVICES = Pattern(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N or mps")

EVAL_BATCH_SIZE = 512
"""Users scored per batch by `evaluate` and `loop.eval_batch_size`'s default: one number for
validation, test and `bert4rec evaluate` (metrics do not depend on it)."""

VALID_USERS = 10_000
"""`loop.valid_users`' default: every user is validated up to this many, a fixed sample of this
many above. One full-ranking validation of `seed` (the costliest preset) over 10,000 users of a
27k-item catalogue takes about 49 s on 2 CPU cores, `large`'s about 11 s (docs/performance.md,
"Validation on large logs"); every user of ML-20M would take 11 and 2.5 minutes."""


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None,
       allowed: Interval | Pattern | None = None) -> Any:
    """A dataclass field with its help text and its allowed values (choices or a range)."""
    return field(default=default, metadata={"help": help, "choices": choices, "allowed": allowed})


TYPE_WORDS = {"int": "a whole number", "float": "a finite number", "str": "a string",
              "bool": "true or false"}


def _has_type(value: Any, kind: str) -> bool:
    """Whether `value` fits a field annotated `kind`; bools are not numbers here."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def check_fields(section: Any) -> None:
    """Raise `SettingsError` naming the first field of `section` whose value has the wrong
    type or lies outside its choices or range, with the value and what is allowed."""
    for f in fields(section):
        key, value = f"{section.SECTION}.{f.name}", getattr(section, f.name)
        if not _has_type(value, f.type):
            raise SettingsError(f"{key} must be {TYPE_WORDS[f.type]}, got {value!r}")
        choices, allowed = f.metadata.get("choices"), f.metadata.get("allowed")
        if choices and value not in choices:
            raise SettingsError(f"{key} must be one of {choices}, got {value!r}")
        if allowed is not None and value not in allowed:
            raise SettingsError(f"{key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class ModelSettings:
    """Shape of the network; `bert4rec.model.BERT4RecConfig` adds the vocabulary from data."""

    SECTION: ClassVar[str] = "model"

    max_len: int = _f(
        200,
        "longest input sequence, [MASK] included; longer histories keep their most recent items",
        allowed=Interval(2, 65_536),
    )
    hidden: int = _f(64, "width of the item embeddings and encoder blocks",
                     allowed=Interval(1, 65_536))
    layers: int = _f(2, "number of transformer encoder blocks", allowed=Interval(1, 1024))
    heads: int = _f(2, "attention heads per block (must divide hidden)",
                    allowed=Interval(1, 1024))
    dropout: float = _f(0.1, "dropout on embeddings and block outputs", allowed=BELOW_ONE)
    attention_dropout: float = _f(0.1, "attention dropout rate (attention_dropout_on says what "
                                  "it drops)", allowed=BELOW_ONE)
    attention_dropout_on: str = _f(
        "keys", "what attention dropout drops: a share of each head's keys per sequence (keys: "
        "DropKey, through the fused attention; on ML-1M level with weights) or attention "
        "probabilities (weights: PyTorch's unfused attention on the CPU, 1.5-2x slower)",
        choices=("weights", "keys"),
    )
    ff_mult: int = _f(4, "feed-forward inner width as a multiple of hidden",
                      allowed=Interval(1, 64))
    causal: bool = _f(
        False,
        "attend only to earlier positions and train every position to predict the next item "
        "(SASRec's objective) instead of the cloze task; the masking settings then do not apply",
    )
    transitions: bool = _f(
        False,
        "learn a logit for each pair of consecutive training items (previous -> next), added to "
        "the next item's score: the exact transitions that item vectors blur",
    )
    item_features: str = _f(
        "",
        "item-table columns whose values become features of every item (genres, brand, ...; "
        "title counts by its words), comma-separated; auto: every categorical column there is",
        allowed=COLUMN_LIST,
    )
    feature_match: bool = _f(
        False,
        "with item features: add to each item's score a learnt weight per feature value times "
        "log(1 + how many history items have that value), summed over the item's values: "
        "what popular-in-category counts, and what a new item is scored by besides its vector",
    )
    id_dropout: float = _f(
        0.1,
        "with item features: chance that an item's id embedding is hidden in a training step, "
        "so that its features alone learn to stand for it, as they do for a new item",
        allowed=BELOW_ONE,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.hidden % self.heads:
            raise SettingsError(
                f"model.hidden ({self.hidden}) must divide by model.heads ({self.heads})"
            )


@dataclass(frozen=True)
class MaskingSettings:
    """The cloze task: which training positions are hidden and what replaces them."""

    SECTION: ClassVar[str] = "masking"

    mask_prob: float = _f(
        0.15, "chance that each non-padding position becomes a training target",
        allowed=Interval(0, 1, low_open=True),
    )
    mask_token_share: float = _f(0.8, "share of targets replaced by [MASK]", allowed=SHARE)
    random_token_share: float = _f(
        0.1,
        "share of targets replaced by a random item (the rest stay unchanged)",
        allowed=SHARE,
    )
    last_item_share: float = _f(
        0.0,
        "share of training samples that mask only their final item (Petrov & Macdonald 2022)",
        allowed=SHARE,
    )
    last_item_prefix: float = _f(
        0.0,
        "chance that a last-item sample first drops a random number of its newest items, so it "
        "predicts the next item of a random prefix (varied next-item targets, as in SASRec)",
        allowed=SHARE,
    )
    windows_per_sequence: int = _f(
        1,
        "windows of max_len items cut from the end of each long sequence",
        allowed=AT_LEAST_ONE,
    )
    window_shift: int = _f(
        0,
        "most items each epoch's windows may move back in time, drawn per sequence (0: fixed)",
        allowed=NOT_NEGATIVE,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.mask_token_share + self.random_token_share > 1:
            raise SettingsError(
                f"masking.mask_token_share ({self.mask_token_share}) + "
                f"masking.random_token_share ({self.random_token_share}) must be <= 1"
            )


@dataclass(frozen=True)
class OptimSettings:
    """Optimiser and learning-rate schedule; the schedule is a pure function of the step."""

    SECTION: ClassVar[str] = "optim"

    optimizer: str = _f("adam", "optimiser", ("adam", "adamw"))
    lr: float = _f(1e-3, "peak learning rate", allowed=POSITIVE)
    weight_decay: float = _f(
        0.0,
        "weight decay (decoupled for adamw, L2 for adam); not on biases or LayerNorm gains",
        allowed=NOT_NEGATIVE,
    )
    beta1: float = _f(0.9, "Adam beta1", allowed=BELOW_ONE)
    beta2: float = _f(0.999, "Adam beta2", allowed=BELOW_ONE)
    schedule: str = _f("step", "learning-rate schedule", ("constant", "step", "warmup_linear"))
    step_epochs: int = _f(
        25,
        "step schedule: multiply the rate by step_gamma every this many epochs",
        allowed=AT_LEAST_ONE,
    )
    step_gamma: float = _f(0.1, "step schedule: the factor", allowed=POSITIVE)
    warmup_fraction: float = _f(
        0.0,
        "warmup_linear schedule: share of all steps spent warming up linearly from 0",
        allowed=SHARE,
    )
    clip_norm: float = _f(
        0.0, "clip the global gradient norm to this (0: no clipping)", allowed=NOT_NEGATIVE
    )
    loss: str = _f(
        "full",
        "loss over the catalogue: full softmax, or a logQ-corrected sampled softmax with "
        "uniform or in-batch negatives for catalogues too large for the full one",
        ("full", "uniform", "in-batch"),
    )
    negatives: int = _f(
        1024, "uniform sampled softmax: negatives drawn per batch", allowed=AT_LEAST_ONE
    )
    exclude_history: bool = _f(
        False,
        "leave the items of each target's own input (for a causal model, those before it) out "
        "of its full softmax, as recommending leaves a user's seen items out; the sampled "
        "losses leave it aside",
    )
    feature_loss: float = _f(
        0.0,
        "with item features: weight of a second loss, the same one over every item's "
        "features-only vector (what a new item has), so that features alone learn to rank; "
        "no effect without item features",
        allowed=NOT_NEGATIVE,
    )
    item_init: str = _f(
        "random",
        "where the item embeddings start: at random, or at a truncated SVD of the positive PMI "
        "of training items within item_window positions of each other (cooccurrence)",
        ("random", "cooccurrence"),
    )
    item_window: int = _f(
        5,
        "item_init=cooccurrence: items at most this many positions apart count as co-occurring",
        allowed=AT_LEAST_ONE,
    )
    item_lr: float = _f(
        1.0,
        "the item embeddings' learning rate as a multiple of lr (0 keeps them where they start)",
        allowed=NOT_NEGATIVE,
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class LoopSettings:
    """The training loop: epochs, batches, validation and stopping."""

    SECTION: ClassVar[str] = "loop"

    epochs: int = _f(100, "maximum number of epochs", allowed=AT_LEAST_ONE)
    batch_size: int = _f(
        128, "training sequences per step (per process under DDP)", allowed=BATCH
    )
    eval_batch_size: int = _f(
        EVAL_BATCH_SIZE,
        "users per batch when scoring the valid and test splits (fewer above 262k items, so "
        "that a batch holds at most 2^27 scores)",
        allowed=BATCH,
    )
    valid_users: int = _f(
        VALID_USERS,
        "validate on a fixed sample of this many users (drawn with loop.seed) when the valid "
        "split has more; test always scores every user (0: validate on every user)",
        allowed=NOT_NEGATIVE,
    )
    patience: int = _f(
        0,
        "stop after this many epochs without a better validation metric (0: never)",
        allowed=NOT_NEGATIVE,
    )
    metric: str = _f(
        "NDCG@10",
        "validation metric that selects the best weights (full ranking, seen items excluded)",
        metric_names(),
    )
    seed: int = _f(0, "seed for initialisation, shuffling, masking and dropout",
                   allowed=NOT_NEGATIVE)
    device: str = _f("auto", "where to train: auto, cpu, cuda, cuda:N or mps", allowed=DEVICES)
    time_budget: float = _f(
        0.0,
        "stop after the first epoch that ends past this many seconds (0: no limit); "
        "the best weights so far are kept",
        allowed=NOT_NEGATIVE,
    )

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "masking": MaskingSettings,
    "optim": OptimSettings,
    "loop": LoopSettings,
}

RETIRED: dict[str, Any] = {"optim.ema_decay": 0.0, "loop.refit": False}
"""Settings that left with their experiment, by the value at which they did nothing, both
removed on 2026-12-04: `optim.ema_decay` (a moving average of the weights did not beat the raw
weights on any data set) and `loop.refit` (training again on everything but the test items,
replaced by the final fit: `fit(..., final=True)`, `train --final`). A stored config.json or
checkpoint that holds that value still loads, without it; any other value is refused, since
these weights were made by code that no longer exists."""


@dataclass(frozen=True)
class Settings:
    """All training settings: stored as `train` in a run's config.json. Each section checked
    its own values when it was built."""

    model: ModelSettings = field(default_factory=ModelSettings)
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)

    def __post_init__(self) -> None:
        for name, section in SECTIONS.items():
            if type(getattr(self, name)) is not section:
                raise SettingsError(f"settings.{name} must be a {section.__name__}, "
                                    f"got {type(getattr(self, name)).__name__}")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain values, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """Inverse of `to_dict`; unknown sections or fields, and invalid values, raise
        `SettingsError` naming them."""
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise SettingsError(f"unknown settings sections {unknown}; known: {sorted(SECTIONS)}")
        parts = {}
        for name, section in SECTIONS.items():
            given = _without_retired(name, dict(values.get(name, {})))
            known = {f.name for f in fields(section)}
            extra = sorted(set(given) - known)
            if extra:
                raise SettingsError(f"unknown {name} settings {extra}; known: {sorted(known)}")
            parts[name] = section(**given)
        return cls(**parts)

    def override(self, changes: dict[str, Any]) -> Settings:
        """A copy with `{"section.field": value}` changes applied (e.g. from the command line)."""
        values = self.to_dict()
        for key, value in changes.items():
            section, _, name = key.partition(".")
            if section not in values or name not in values[section]:
                raise SettingsError(f"unknown setting {key!r}; see `bert4rec train --help`")
            values[section][name] = value
        return Settings.from_dict(values)


def _without_retired(section: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (one section's stored values) less the RETIRED settings at their no-op value;
    a retired setting at any other value raises `SettingsError` naming it."""
    for key, inert in RETIRED.items():
        name = key.removeprefix(f"{section}.")
        if name == key or name not in given:
            continue
        if given[name] != inert:
            raise SettingsError(f"{key} was retired on 2026-12-04 and these settings use it "
                                f"({given[name]!r}); only {inert!r} (off) still loads: retrain "
                                "without it")
        del given[name]
    return given


def parse_bool(text: str) -> bool:
    """`true`/`false` (also yes/no, on/off, 1/0, any case) -> bool; anything else: ValueError."""
    words = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
    word = text.strip().lower()
    if word not in words:
        raise ValueError(f"expected true or false, got {text!r}")
    return words[word]


FIELD_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": parse_bool}
"""Settings fields' annotations (strings under postponed evaluation) -> the type to parse into."""


def field_defaults(section: type) -> dict[str, Any]:
    """The code defaults of one settings section, by field name."""
    return {f.name: f.default for f in fields(section) if f.default is not MISSING}


def allowed_values(f: Any) -> str:
    """What a settings field allows, in words (docs/configuration.md lists it per field)."""
    if f.metadata.get("choices"):
        return ", ".join(f.metadata["choices"])
    if f.metadata.get("allowed") is not None:
        return str(f.metadata["allowed"])
    return TYPE_WORDS[f.type]


SEED = Settings(
    model=ModelSettings(
        max_len=128, hidden=256, layers=2, heads=4, dropout=0.1, attention_dropout=0.1,
        attention_dropout_on="weights",
    ),
    masking=MaskingSettings(mask_prob=0.15, mask_token_share=0.8, random_token_share=0.1),
    optim=OptimSettings(optimizer="adam", lr=1e-3, schedule="step", step_epochs=25, step_gamma=0.1),
    loop=LoopSettings(epochs=100, batch_size=128),
)
"""The founding document's recipe (its attention dropout on the attention probabilities)."""

PAPER = Settings(
    model=ModelSettings(
        max_len=200, hidden=64, layers=2, heads=2, dropout=0.2, attention_dropout=0.2,
        attention_dropout_on="weights",
    ),
    masking=MaskingSettings(mask_prob=0.2, mask_token_share=1.0, random_token_share=0.0),
    optim=OptimSettings(
        optimizer="adamw", lr=1e-4, weight_decay=0.01, schedule="warmup_linear",
        warmup_fraction=0.01, clip_norm=5.0,
    ),
    loop=LoopSettings(epochs=200, batch_size=256),
)
"""Sun et al. (CIKM 2019) for ML-1M, attention dropout on the probabilities as the paper's:
400k steps in the paper; set --epochs to match your budget."""

FAST = Settings(
    model=ModelSettings(
        max_len=100, hidden=64, layers=2, heads=2, dropout=0.0, attention_dropout=0.0
    ),
    masking=MaskingSettings(
        mask_prob=0.4, mask_token_share=1.0, random_token_share=0.0, last_item_share=0.2
    ),
    optim=OptimSettings(
        optimizer="adamw", lr=2e-3, weight_decay=0.01, schedule="warmup_linear",
        warmup_fraction=0.02, clip_norm=5.0,
    ),
    loop=LoopSettings(epochs=40, batch_size=64, patience=0),
)
"""Our default for a small CPU, tuned on ml-1m.txt at equal wall time (docs/training-recipe.md):
100-item windows, small batches, a higher rate, no dropout, 40% of positions masked, 20% of
samples masking only their last item, and no attention dropout (on CPU it forces PyTorch's
unfused attention: 2.4x slower steps at length 200)."""

SMALL = replace(
    FAST,
    model=replace(FAST.model, max_len=50, dropout=0.1),
    masking=replace(FAST.masking, mask_prob=0.2, last_item_share=0.5, last_item_prefix=1.0,
                    windows_per_sequence=8),
    optim=replace(FAST.optim, lr=3e-3, item_init="cooccurrence", item_window=3, item_lr=0.1,
                  exclude_history=True),
    loop=replace(FAST.loop, epochs=80, batch_size=32),
)
"""For logs of up to a few hundred thousand interactions (ml-latest-small, ML-100k): item
embeddings that start at the training items' co-occurrence (within 3 positions) and move at a
tenth of the rate, so that the transformer learns to read them instead of memorising each
user; 50-item windows, up to 8 per sequence, in batches of 32; 20% of positions masked and
half the samples predicting the next item of a random prefix; each target scored without the
items its sample shows, which recommending leaves out too (docs/training-recipe.md)."""

LARGE = replace(
    FAST,
    model=replace(FAST.model, dropout=0.1),
    masking=replace(FAST.masking, windows_per_sequence=2, window_shift=100),
    optim=replace(FAST.optim, item_init="cooccurrence", item_lr=0.1),
    loop=replace(FAST.loop, epochs=80),
)
"""For a million interactions and more: `fast` with dropout 0.1, two 100-item windows per
sequence that move back in time by up to 100 items each epoch, 80 epochs, and item embeddings
that start at co-occurrence and move at a tenth of the rate (ML-1M test full NDCG@10 0.1687,
from 0.1624 with the random start; docs/results.md)."""

SHORT = replace(
    SMALL,
    model=replace(SMALL.model, causal=True, transitions=True, dropout=0.5, item_features="auto",
                  feature_match=True),
    optim=replace(SMALL.optim, loss="uniform", negatives=1024, feature_loss=1.0,
                  exclude_history=False),
    loop=replace(SMALL.loop, epochs=20, batch_size=64),
)
"""For short sequences, as in most shops' logs (Amazon Beauty: 8.9 items per user): `small`,
but each position predicts the next item from the ones before it (SASRec's objective, which
trains on every position of a short sequence instead of a fifth of them), a learnt logit for
each pair of consecutive items seen in training (what a first-order Markov chain counts),
the item table's categorical columns as features where it has any, with the same loss again
over every item's features alone (so that new items rank well) and a learnt logit for the
feature values an item shares with the history (`model.feature_match`: Beauty's test 0.0567
against 0.0542, its cold items 0.1705 against 0.1479), dropout 0.5, 1,024 uniform
negatives per batch of 64, 20 epochs (docs/results.md)."""

CAUSAL = replace(
    LARGE,
    model=replace(LARGE.model, causal=True),
    optim=replace(LARGE.optim, exclude_history=True),
    loop=replace(LARGE.loop, epochs=80),
)
"""For a million interactions and more over a catalogue of up to CAUSAL_ITEMS items (ML-1M):
`large`, but each position predicts the next item from the ones before it (SASRec's
objective) in a softmax without the items before it, which recommending leaves out too; 80
epochs. On ML-1M it validates at 0.1994, 0.1982 and 0.1962 (seeds 0-2; with 60 epochs
0.1946, 0.1937 and 0.1935, and 0.1869 and 0.1850 for seeds 0 and 1 with those items in the
softmax) where `large` gives 0.1691 (docs/results.md). Every position
scores the whole catalogue: over ML-20M's 26,744 items an epoch costs 2.5 times a cloze one,
so `auto` keeps `large` there."""

PRESETS: dict[str, Settings] = {
    "seed": SEED, "paper": PAPER, "fast": FAST, "small": SMALL, "large": LARGE, "short": SHORT,
    "causal": CAUSAL,
}

AUTO = "auto"
"""Not a preset but a rule: `auto_preset` picks one of AUTO_CHOICES from the data."""

AUTO_CHOICES = ("short", "small", "causal", "large")

SHORT_SEQUENCES = 20
"""`auto` trains `short` where users have fewer than this many interactions on average: Amazon
Beauty (8.9) gains from it; the MovieLens logs (80 and more) keep `small`, `causal` or `large`."""

SMALL_DATA_INTERACTIONS = 300_000
"""Otherwise `auto` trains `small` below this many interactions: ML-100k (100,000) and
ml-latest-small (48,562) gain from `small`."""

CAUSAL_ITEMS = 10_000
"""From SMALL_DATA_INTERACTIONS on, `auto` trains `causal` over a catalogue of up to this many
items (ML-1M: 3,416, where it validates 0.011 above `large`) and `large` over a bigger one,
where scoring the whole catalogue at every position costs too much (ML-20M: 26,744 items,
2.5 times a cloze epoch with the fused full softmax, 2.8 before; its quality there is not
measured)."""


def auto_choice(n_interactions: int, n_users: int, n_items: int) -> tuple[str, str]:
    """The preset `auto` stands for on a corpus of `n_interactions` by `n_users` over `n_items`
    items, and why, in words."""
    mean = n_interactions / max(n_users, 1)
    if mean < SHORT_SEQUENCES:
        return "short", f"{mean:.1f} interactions per user, fewer than {SHORT_SEQUENCES}"
    if n_interactions < SMALL_DATA_INTERACTIONS:
        return "small", f"{n_interactions:,} interactions, fewer than {SMALL_DATA_INTERACTIONS:,}"
    many = f"{n_interactions:,} interactions, at least {SMALL_DATA_INTERACTIONS:,}"
    if n_items <= CAUSAL_ITEMS:
        return "causal", f"{many}, over {n_items:,} items, at most {CAUSAL_ITEMS:,}"
    return "large", f"{many}, over {n_items:,} items, more than {CAUSAL_ITEMS:,}"


def auto_preset(n_interactions: int, n_users: int, n_items: int) -> str:
    """The preset `auto` stands for on a corpus of `n_interactions` by `n_users` over
    `n_items` items."""
    return auto_choice(n_interactions, n_users, n_items)[0]


def preset(name: str) -> Settings:
    """The named preset; raises KeyError listing the known names (`auto` needs the data:
    resolve it with `auto_preset` first)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name])
