"""The BERT4Rec network (Sun et al., CIKM 2019): a bidirectional transformer over item sequences.

Pure torch: LongTensors of vocabulary indices in, logits over the vocabulary out. Vocabulary
layout: `data.vocab.Vocabulary` (padding 0, the items, then [MASK]).
Inputs are left-padded, so the most recent item (or the [MASK] to predict) is at position T - 1.
Defined bottom-up: embeddings, attention, block, encoder, BERT4Rec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bert4rec.config import Interval, ModelSettings
from bert4rec.data.vocab import PAD, Vocabulary
from bert4rec.errors import SettingsError

ITEM_START_STD = 0.1
"""Standard deviation of item embeddings started from co-occurrence (`start_items_at`): five
times the random start's 0.02, so that a frozen table can move logits past the popularity
bias (on ml-latest-small 0.1 beat 0.02, 0.3 and 1.0; docs/training-recipe.md)."""

INIT_BLOCK_ROWS = 1 << 20
"""Embedding tables are started this many rows at a time: torch's `trunc_normal_` draws by
rejection with about three more copies of its tensor, 10 GB at once for a 10M x 64 item table
(docs/performance.md). Tables of up to this many rows are drawn in one go, as ever."""


@dataclass(frozen=True, kw_only=True)
class BERT4RecConfig(ModelSettings):
    """Everything needed to rebuild the network; stored as `model` in a run's config.json.

    The shape (`max_len`, `hidden`, `layers`, `heads`, `dropout`, `attention_dropout`,
    `ff_mult`: their defaults, meanings and checks) is `ModelSettings`, the training settings'
    `model` section; the vocabulary size comes from the data.
    """

    vocab_size: int = field(metadata={"allowed": Interval(3)})
    """Entries of the vocabulary (`Vocabulary.size`: padding, the items, [MASK]); at least one
    item."""

    @classmethod
    def from_shape(cls, shape: ModelSettings, vocab_size: int) -> BERT4RecConfig:
        """The network of `shape` over a vocabulary of `vocab_size` entries."""
        return cls(vocab_size=vocab_size,
                   **{f.name: getattr(shape, f.name) for f in fields(ModelSettings)})

    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary's layout."""
        return Vocabulary.of_size(self.vocab_size)

    @property
    def mask_token(self) -> int:
        """The [MASK] index: the last entry of the vocabulary."""
        return self.vocab.mask

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, `vocab_size` first."""
        shape = asdict(self)
        return {"vocab_size": shape.pop("vocab_size"), **shape}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BERT4RecConfig:
        """Inverse of `to_dict`; unknown keys are an error so typos in config.json surface."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown model settings {unknown}; known: {sorted(known)}")
        return cls(**values)


class Embeddings(nn.Module):
    """Item embedding (row 0 = padding, kept at zero) plus a learned position embedding.

    Positions count back from the end (the last column is position 0), so a left-padded sequence
    and the same sequence without padding see identical embeddings for every real item.
    """

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.item = nn.Embedding(config.vocab_size, config.hidden, padding_idx=PAD)
        self.position = nn.Embedding(config.max_len, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(items.shape[1] - 1, -1, -1, device=items.device)  # [T]: T-1 .. 0
        x = self.item(items) + self.position(positions)  # [B, T, H]
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head bidirectional self-attention; padded keys are never attended to."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.attention_dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor, last: bool = False) -> torch.Tensor:
        """`x` [B, T, H]; `keep` [B, 1, 1, T] bool, True for real (non-padding) keys. With
        `last`, only the last position queries: [B, 1, H] (what a prediction needs)."""
        b, _, h = x.shape
        if last:  # queries of one position, keys and values of all: a third of the products
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -1:], weight[:h], bias[:h])  # [B, 1, H]
            k, v = F.linear(x, weight[h:], bias[h:]).split(h, dim=-1)  # 2 x [B, T, H]
        else:
            q, k, v = self.qkv(x).split(h, dim=-1)  # 3 x [B, T, H]
        q, k, v = (z.view(b, -1, self.heads, h // self.heads).transpose(1, 2) for z in (q, k, v))
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(b, -1, h)  # [B, heads, T, H/heads] -> [B, T, H]
        return self.out(y)


class Block(nn.Module):
    """Pre-norm transformer encoder block: attention then GELU feed-forward, each residual."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden)
        self.attention = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.ff = nn.Sequential(
            nn.Linear(config.hidden, config.ff_mult * config.hidden),
            nn.GELU(),
            nn.Linear(config.ff_mult * config.hidden, config.hidden),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, last: bool = False) -> torch.Tensor:
        """[B, T, H] -> [B, T, H], or with `last` the last position only: [B, 1, H]."""
        attended = self.attention(self.norm1(x), keep, last)
        x = (x[:, -1:] if last else x) + self.dropout(attended)
        return x + self.dropout(self.ff(self.norm2(x)))


class Encoder(nn.Module):
    """Embeddings, N blocks and a final LayerNorm: items [B, T] -> hidden states [B, T, H]."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)

    def forward(self, items: torch.Tensor, last: bool = False) -> torch.Tensor:
        """With `last`, only the last position's state [B, 1, H]: the final block then
        computes nothing the other positions alone need (1.7x fewer products at width 64)."""
        keep = (items != PAD)[:, None, None, :]  # [B, 1, 1, T]
        x = self.embeddings(items)  # [B, T, H]
        for depth, block in enumerate(self.blocks, start=1):
            x = block(x, keep, last and depth == len(self.blocks))
        return self.norm(x)


class BERT4Rec(nn.Module):
    """Encoder plus a BERT-style transform head whose output layer is the item embedding + a bias.

    `forward(items, targets)` in training gives logits only where `targets` is True ([N, V],
    N = number of masked positions); `forward(items)` gives logits at the last position [B, V].
    Every row of `items` needs at least one non-padding entry.
    """

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.transform = nn.Sequential(
            nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.LayerNorm(config.hidden)
        )
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.register_buffer("not_items", torch.tensor(config.vocab.not_items), persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Embeddings: BERT's truncated normal(0.02), padding row zero. Linear layers keep
        PyTorch's default (Kaiming-uniform) weights with zero biases: BERT's 0.02 there, at
        width 64, makes attention pass ~3% of the context on and training sits at popularity
        level for hundreds of steps (docs/training-recipe.md)."""
        if isinstance(module, nn.Embedding):
            with torch.no_grad():
                for rows in module.weight.split(INIT_BLOCK_ROWS):
                    nn.init.trunc_normal_(rows, std=0.02, a=-0.04, b=0.04)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    @torch.no_grad()
    def start_at_popularity(self, log_frequency: torch.Tensor) -> None:
        """Set the output bias to the log item frequencies [V], so training starts from the
        popularity ranking instead of spending its first ~1,000 steps learning it through the
        (tied) item embeddings, which also drags them together (docs/training-recipe.md)."""
        self.output_bias.copy_(log_frequency)

    @torch.no_grad()
    def start_items_at(self, vectors: torch.Tensor) -> None:
        """Set the item embeddings to `vectors` [V, H] (e.g. `ppmi_embeddings`), rescaled to a
        standard deviation of ITEM_START_STD. Padding, [MASK] and items whose row is all zero
        (nothing known of them) keep their random start."""
        known = vectors.ne(0).any(dim=1)  # [V]
        known[0] = known[-1] = False
        if not known.any():
            return
        weight = self.encoder.embeddings.item.weight
        chosen = vectors[known]  # [K, H]
        weight[known] = (chosen * (ITEM_START_STD / chosen.std().clamp_min(1e-12))).to(weight)

    def forward(
        self, items: torch.Tensor,
        targets: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        project: bool = True,
    ) -> torch.Tensor:
        """Logits [N, V] at positions where `targets` [B, T] is True (or at the N positions
        `targets` = (rows, columns) indexes, repeats allowed), else [B, V] at T - 1.

        With `project=False` it stops before the output layer and returns the transformed
        states [N or B, H], for losses that score only some items (sampled softmax).
        """
        if targets is None:
            selected = self.encoder(items, last=True)[:, -1]  # [B, H]
        else:
            selected = self.encoder(items)[targets]  # [N, H]
        if not project:
            return self.transform(selected)
        return self.project(selected)

    @property
    def output_weight(self) -> torch.Tensor:
        """The output layer's item matrix [V, H]: the input item embedding (tied)."""
        return self.encoder.embeddings.item.weight

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [N, H] -> logits [N, V] through the head and the tied item embedding.

        Padding and [MASK] are never predictions: their logits are -inf, which also keeps the
        output loss from moving their embeddings. The -inf goes into the bias [V] rather than
        onto the logits, so no second [N, V] tensor is written (nor its gradient): a fifth of
        a `fast` step on a 27k-item catalogue. The logits are the same.
        """
        h = self.transform(hidden)  # [N, H]
        bias = self.output_bias.index_fill(0, self.not_items, float("-inf"))  # [V]
        return F.linear(h, self.output_weight, bias)  # [N, V]

    def num_parameters(self) -> int:
        """Count of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

