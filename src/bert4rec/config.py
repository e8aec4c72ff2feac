"""Typed training settings and the named presets `seed`, `paper` and `fast`.

A `Settings` is four small sections (model, masking, optim, loop). Every field carries its
help text in `metadata["help"]`: the CLI builds one flag per field from it and
docs/configuration.md documents the same defaults (a test keeps them equal). Presets are
plain instances, never executed files. The data settings (filters) belong to the corpus.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text (and allowed values) attached."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class ModelSettings:
    """Shape of the network (`bert4rec.model.BERT4RecConfig`); the vocabulary comes from data."""

    max_len: int = _f(
        200,
        "longest input sequence, [MASK] included; longer histories keep their most recent items",
    )
    hidden: int = _f(64, "width of the item embeddings and encoder blocks")
    layers: int = _f(2, "number of transformer encoder blocks")
    heads: int = _f(2, "attention heads per block (must divide hidden)")
    dropout: float = _f(0.1, "dropout on embeddings and block outputs")
    attention_dropout: float = _f(0.1, "dropout on attention probabilities")
    ff_mult: int = _f(4, "feed-forward inner width as a multiple of hidden")


@dataclass(frozen=True)
class MaskingSettings:
    """The cloze task: which training positions are hidden and what replaces them."""

    mask_prob: float = _f(0.15, "chance that each non-padding position becomes a training target")
    mask_token_share: float = _f(0.8, "share of targets replaced by [MASK]")
    random_token_share: float = _f(
        0.1,
        "share of targets replaced by a random item (the rest stay unchanged)",
    )
    last_item_share: float = _f(
        0.0,
        "share of training samples that mask only their final item (Petrov & Macdonald 2022)",
    )
    last_item_prefix: float = _f(
        0.0,
        "chance that a last-item sample first drops a random number of its newest items, so it "
        "predicts the next item of a random prefix (varied next-item targets, as in SASRec)",
    )
    windows_per_sequence: int = _f(
        1,
        "windows of max_len items cut from the end of each long sequence",
    )
    window_shift: int = _f(
        0,
        "most items each epoch's windows may move back in time, drawn per sequence (0: fixed)",
    )


@dataclass(frozen=True)
class OptimSettings:
    """Optimiser and learning-rate schedule; the schedule is a pure function of the step."""

    optimizer: str = _f("adam", "optimiser", ("adam", "adamw"))
    lr: float = _f(1e-3, "peak learning rate")
    weight_decay: float = _f(
        0.0,
        "weight decay (decoupled for adamw, L2 for adam); not on biases or LayerNorm gains",
    )
    beta1: float = _f(0.9, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    schedule: str = _f("step", "learning-rate schedule", ("constant", "step", "warmup_linear"))
    step_epochs: int = _f(
        25,
        "step schedule: multiply the rate by step_gamma every this many epochs",
    )
    step_gamma: float = _f(0.1, "step schedule: the factor")
    warmup_fraction: float = _f(
        0.0,
        "warmup_linear schedule: share of all steps spent warming up linearly from 0",
    )
    clip_norm: float = _f(0.0, "clip the global gradient norm to this (0: no clipping)")
    loss: str = _f(
        "full",
        "loss over the catalogue: full softmax, or a logQ-corrected sampled softmax with "
        "uniform or in-batch negatives for catalogues too large for the full one",
        ("full", "uniform", "in-batch"),
    )
    negatives: int = _f(1024, "uniform sampled softmax: negatives drawn per batch")
    ema_decay: float = _f(
        0.0,
        "validate and keep an exponential moving average of the weights, updated every step "
        "with this decay (0: the raw weights)",
    )


@dataclass(frozen=True)
class LoopSettings:
    """The training loop: epochs, batches, validation and stopping."""

    epochs: int = _f(100, "maximum number of epochs")
    batch_size: int = _f(128, "training sequences per step (per process under DDP)")
    eval_batch_size: int = _f(512, "users per batch during validation")
    patience: int = _f(
        0,
        "stop after this many epochs without a better validation metric (0: never)",
    )
    metric: str = _f(
        "NDCG@10",
        "validation metric that selects the best weights (full ranking, seen items excluded)",
    )
    seed: int = _f(0, "seed for initialisation, shuffling, masking and dropout")
    device: str = _f("auto", "where to train: auto, cpu, cuda, cuda:N or mps")
    batching: str = _f(
        "bucket",
        "bucket: batch windows of similar length and skip all-padding columns (faster); "
        "shuffle: plain shuffled batches",
        ("bucket", "shuffle"),
    )
    time_budget: float = _f(
        0.0,
        "stop after the first epoch that ends past this many seconds (0: no limit); "
        "the best weights so far are kept",
    )
    refit: bool = _f(
        False,
        "after choosing the epoch on validation, train afresh on the training and validation "
        "items for that many epochs and keep those weights (test then scores the refit model)",
    )


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "masking": MaskingSettings,
    "optim": OptimSettings,
    "loop": LoopSettings,
}


@dataclass(frozen=True)
class Settings:
    """All training settings: stored as `train` in a run's config.json."""

    model: ModelSettings = field(default_factory=ModelSettings)
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain values, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """Inverse of `to_dict`; unknown sections or fields raise ValueError naming them."""
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown settings sections {unknown}; known: {sorted(SECTIONS)}")
        parts = {}
        for name, section in SECTIONS.items():
            given = dict(values.get(name, {}))
            known = {f.name for f in fields(section)}
            extra = sorted(set(given) - known)
            if extra:
                raise ValueError(f"unknown {name} settings {extra}; known: {sorted(known)}")
            parts[name] = section(**given)
        return cls(**parts).validated()

    def override(self, changes: dict[str, Any]) -> Settings:
        """A copy with `{"section.field": value}` changes applied (e.g. from the command line)."""
        values = self.to_dict()
        for key, value in changes.items():
            section, _, name = key.partition(".")
            if section not in values or name not in values[section]:
                raise ValueError(f"unknown setting {key!r}; see `bert4rec train --help`")
            values[section][name] = value
        return Settings.from_dict(values)

    def validated(self) -> Settings:
        """Self, after checking ranges and choices; raises ValueError naming the field."""
        for name in SECTIONS:
            section = getattr(self, name)
            for f in fields(section):
                choices = f.metadata.get("choices")
                value = getattr(section, f.name)
                if choices and value not in choices:
                    raise ValueError(f"{name}.{f.name} must be one of {choices}, got {value!r}")
        m, k = self.masking, self.model
        if not 0 < m.mask_prob <= 1 or m.mask_token_share + m.random_token_share > 1:
            raise ValueError(
                "masking: need 0 < mask_prob <= 1 and mask_token_share + random_token_share <= 1"
            )
        if not 0 <= m.last_item_prefix <= 1:
            raise ValueError(
                f"masking.last_item_prefix must be in [0, 1], got {m.last_item_prefix}"
            )
        if not 0 <= m.last_item_share <= 1 or m.windows_per_sequence < 1 or m.window_shift < 0:
            raise ValueError("masking: need 0 <= last_item_share <= 1, windows_per_sequence >= 1"
                             " and window_shift >= 0")
        if not 0 <= self.optim.ema_decay < 1:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.optim.ema_decay}")
        loop = self.loop
        if not isinstance(loop.refit, bool):
            raise ValueError(f"loop.refit must be true or false, got {loop.refit!r}")
        if loop.epochs < 1 or loop.batch_size < 1 or loop.eval_batch_size < 1 or loop.patience < 0:
            raise ValueError("loop: need epochs, batch_size, eval_batch_size >= 1, patience >= 0")
        for name in ("hidden", "heads", "layers", "ff_mult"):
            if getattr(k, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(k, name)}")
        if k.hidden % k.heads or k.max_len < 2:
            raise ValueError(
                f"model: hidden ({k.hidden}) must divide by heads ({k.heads}); max_len >= 2"
            )
        return self


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


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["model.hidden=128", "optim.lr=3e-3"]` -> `{"model.hidden": 128, "optim.lr": 0.003}`,
    each value converted to its field's type; for scripts that take `--set` assignments."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        section, _, name = key.partition(".")
        known = {f.name: f for f in fields(SECTIONS[section])} if section in SECTIONS else {}
        if not sep or name not in known:
            raise ValueError(f"expected SECTION.FIELD=VALUE with a known field, got {pair!r}")
        try:
            changes[key] = FIELD_TYPES[known[name].type](text)
        except ValueError:
            raise ValueError(f"{key}: expected {known[name].type}, got {text!r}") from None
    return changes


def field_defaults(section: type) -> dict[str, Any]:
    """The code defaults of one settings section, by field name."""
    return {f.name: f.default for f in fields(section) if f.default is not MISSING}


SEED = Settings(
    model=ModelSettings(
        max_len=128, hidden=256, layers=2, heads=4, dropout=0.1, attention_dropout=0.1
    ),
    masking=MaskingSettings(mask_prob=0.15, mask_token_share=0.8, random_token_share=0.1),
    optim=OptimSettings(optimizer="adam", lr=1e-3, schedule="step", step_epochs=25, step_gamma=0.1),
    loop=LoopSettings(epochs=100, batch_size=128),
)
"""The founding document's recipe."""

PAPER = Settings(
    model=ModelSettings(
        max_len=200, hidden=64, layers=2, heads=2, dropout=0.2, attention_dropout=0.2
    ),
    masking=MaskingSettings(mask_prob=0.2, mask_token_share=1.0, random_token_share=0.0),
    optim=OptimSettings(
        optimizer="adamw", lr=1e-4, weight_decay=0.01, schedule="warmup_linear",
        warmup_fraction=0.01, clip_norm=5.0,
    ),
    loop=LoopSettings(epochs=200, batch_size=256),
)
"""Sun et al. (CIKM 2019) for ML-1M: 400k steps in the paper; set --epochs to match your budget."""

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

PRESETS: dict[str, Settings] = {"seed": SEED, "paper": PAPER, "fast": FAST}


def preset(name: str) -> Settings:
    """The named preset; raises KeyError listing the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name])
