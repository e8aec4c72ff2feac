"""The BERT4Rec network (Sun et al., CIKM 2019): a bidirectional transformer over item sequences.

Pure torch: LongTensors of vocabulary indices in, logits over the vocabulary out. Vocabulary
layout: `data.vocab.Vocabulary` (padding 0, the items, then [MASK]).
Inputs are left-padded, so the most recent item (or the [MASK] to predict) is at position T - 1.
Defined bottom-up: embeddings, attention, block, encoder, BERT4Rec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from bert4rec.config import Interval, ModelSettings
from bert4rec.data.vocab import PAD, Vocabulary
from bert4rec.errors import SettingsError

if TYPE_CHECKING:
    from bert4rec.data.features import ItemFeatures
    from bert4rec.training.losses import PairLogits

ITEM_START_STD = 0.1
"""Standard deviation of item embeddings started from co-occurrence (`start_items_at`): five
times the random start's 0.02, so that a frozen table can move logits past the popularity
bias (on ml-latest-small 0.1 beat 0.02, 0.3 and 1.0; docs/training-recipe.md)."""

TRANSITION_START = 2.0
"""Where the transition logits start: this times log(1 + the pair's count in training)."""

INIT_BLOCK_ROWS = 1 << 20
"""Embedding tables are started this many rows at a time: torch's `trunc_normal_` draws by
rejection with about three more copies of its tensor, 10 GB at once for a 10M x 64 item table
(docs/performance.md). Tables of up to this many rows are drawn in one go, as ever."""


INCIDENCE_COLUMNS = 64
"""The full softmax in training takes its feature matches fused, as value columns beside the
item table (`BERT4Rec.match_columns`), where the batch holds at most this many values
(genres); with more (brands) it adds their logits to an unfused softmax."""

POOL_ROWS = 1 << 14
"""Items whose value embeddings are gathered at once outside training: [rows, slots, H] floats
(at most 64 MB at 16 values and width 64), not [V, slots, H] for a large catalogue."""


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
    transition_pairs: int = field(default=0, metadata={"allowed": Interval(0)})
    """With `transitions`: how many (previous, next) item pairs have a learnt logit (from the
    training data); 0 otherwise."""
    transition_width: int = field(default=0, metadata={"allowed": Interval(0)})
    """With `transitions`: the most pairs that start at any one item (the fixed width a
    prediction gathers, so that it exports); 0 otherwise."""
    feature_vocab_size: int = field(default=0, metadata={"allowed": Interval(0)})
    """Rows of the item-feature value table (data/features.py: padding, "no known value", the
    values); 0 without item features."""
    feature_slots: int = field(default=0, metadata={"allowed": Interval(0)})
    """Most feature values one item has; 0 without item features."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.feature_vocab_size == 0) != (self.feature_slots == 0):
            raise SettingsError(f"feature_vocab_size ({self.feature_vocab_size}) and "
                                f"feature_slots ({self.feature_slots}) are both 0 or neither")

    @classmethod
    def from_shape(cls, shape: ModelSettings, vocab_size: int,
                   features: ItemFeatures | None = None,
                   transition_pairs: int = 0, transition_width: int = 0) -> BERT4RecConfig:
        """The network of `shape` over a vocabulary of `vocab_size` entries, with the item
        `features` chosen from the data (their columns replace `shape.item_features`) and,
        with `shape.transitions`, `transition_pairs` learnt pairs, at most `transition_width`
        from any one item."""
        values = {f.name: getattr(shape, f.name) for f in fields(ModelSettings)}
        pairs = {"transition_pairs": transition_pairs, "transition_width": transition_width}
        if features is None:
            return cls(vocab_size=vocab_size, **pairs, **{**values, "item_features": ""})
        return cls(vocab_size=vocab_size, feature_vocab_size=features.size,
                   feature_slots=features.slots, **pairs,
                   **{**values, "item_features": ",".join(features.columns)})

    @property
    def has_features(self) -> bool:
        return self.feature_vocab_size > 0

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


class ItemFeatureVectors(nn.Module):
    """Item side information (data/features.py): an embedding and an output bias per feature
    value, what values each vocabulary entry has (`item_values` [V, slots], 0 pads) and
    whether its id embedding counts (`has_id` [V], 1 or 0: an item never seen in training,
    or added after it, has features only).

    An item's vector is its id embedding (where it counts) plus the mean of its values'
    embeddings, as in RecTools' CatFeaturesItemNet (which sums them). Its output bias is its
    own where its id counts, else the mean of its values' biases. In training, each step
    hides a share `id_dropout` of the ids (`hide_ids`), input and output alike, so that the
    features learn to stand for an item alone.
    """

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.values = nn.Embedding(config.feature_vocab_size, config.hidden, padding_idx=PAD)
        self.value_bias = nn.Parameter(torch.zeros(config.feature_vocab_size))
        self.register_buffer("item_values", torch.zeros(config.vocab_size, config.feature_slots,
                                                        dtype=torch.int32))
        self.register_buffer("has_id", torch.ones(config.vocab_size))
        self.id_dropout = config.id_dropout
        self.hidden_ids: torch.Tensor | None = None
        self.averaging: torch.Tensor | None = None
        self.kept: tuple[tuple[int, ...], torch.Tensor] | None = None
        """Outside training and autograd: every entry's pooled vector [V, H] with the storage
        and version of the tensors it came from, so that batch after batch of scoring pools
        them once (10 ms a batch on Amazon Beauty). Dropped on every `train`/`eval` switch:
        a fused optimiser step changes the weights without a new version."""

    def train(self, mode: bool = True) -> ItemFeatureVectors:
        """`nn.Module.train`, dropping `kept`: fused Adam(W) updates the value table in place
        without bumping its version, so a key of versions alone let validation score every
        epoch with the first epoch's pooled vectors (on Beauty, with the same training losses,
        validation 0.0671 against 0.0747;
        docs/notebook/2026-12-06-short-step-layout-and-alone-negatives.md)."""
        self.kept = None
        return super().train(mode)

    def hide_ids(self) -> None:
        """Draw this training step's items whose id is hidden (never padding or [MASK])."""
        keep = torch.rand(self.has_id.shape, device=self.has_id.device) >= self.id_dropout
        keep[[PAD, -1]] = True
        self.hidden_ids = self.has_id * keep

    def id_weight(self) -> torch.Tensor:
        """[V]: 1 where the id embedding counts (this step, in training), else 0."""
        if self.training and self.hidden_ids is not None:
            return self.hidden_ids
        return self.has_id

    def set_values(self, item_values: torch.Tensor) -> None:
        """Give each vocabulary entry its values [V, slots] and build `averaging`, the
        sparse [V, values] matrix of 1 / (values of the item) that training multiplies the
        value table by: at Amazon Beauty's size (12k items, 6 values each) half the time of
        gathering [V, slots, H] and summing, forward and backward."""
        self.item_values.copy_(item_values)
        keep = self.item_values.ne(PAD)  # [V, L]
        counts = keep.sum(1)
        rows = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]
        weights = (1.0 / counts.clamp_min(1)).repeat_interleave(counts)
        self.averaging = torch.sparse_coo_tensor(
            torch.stack([rows, self.item_values[keep].long()]), weights,
            (len(keep), self.values.num_embeddings), check_invariants=True).coalesce()

    def pooled(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The mean value embedding of `items` [...] -> [..., H] (every entry: [V, H], in
        training through `averaging`, else POOL_ROWS entries at a time, kept while the
        weights stay as they are, outside autograd)."""
        if items is not None:
            return self._mean(self.item_values[items])
        if self.training and self.averaging is not None:
            with torch.autocast(self.item_values.device.type, enabled=False):
                return torch.sparse.mm(self.averaging, self.values.weight)
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._every_mean()
        sources = (self.values.weight, self.item_values)
        key = tuple(x for t in sources for x in (t.data_ptr(), t._version))
        if self.kept is None or self.kept[0] != key:
            self.kept = (key, self._every_mean())
        return self.kept[1]

    def _every_mean(self) -> torch.Tensor:
        """[V, H]: every entry's `_mean`, POOL_ROWS entries at a time."""
        return torch.cat([self._mean(rows) for rows in self.item_values.split(POOL_ROWS)])

    def _mean(self, values: torch.Tensor) -> torch.Tensor:
        """[..., L] value indices -> [..., H], the mean of their embeddings (padding aside).
        Training takes one bag per item (a third faster, forward and backward, than gathering
        [..., L, H] and summing); the gather exports to ONNX."""
        if self.training:
            flat = values.reshape(-1, values.shape[-1])
            return F.embedding_bag(flat, self.values.weight, mode="mean", padding_idx=PAD
                                   ).view(*values.shape[:-1], -1)
        count = values.ne(PAD).sum(-1, keepdim=True).clamp_min(1)
        return self.values(values).sum(-2) / count

    def vectors(self, ids: torch.Tensor, items: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors from the id embeddings `ids` [..., H] of `items` (None: all [V, H]);
        `pooled`: their `pooled(items)`, where the caller has it already."""
        weight = self.id_weight() if items is None else self.id_weight()[items]
        return ids * weight.unsqueeze(-1) + (self.pooled(items) if pooled is None else pooled)

    def pooled_bias(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The mean value bias (padding aside) of `items` [...] -> [...] (None: all, [V])."""
        values = self.item_values if items is None else self.item_values[items]
        count = values.ne(PAD).sum(-1).clamp_min(1)
        return self.value_bias[values].masked_fill(values == PAD, 0.0).sum(-1) / count

    def bias(self, own: torch.Tensor, items: torch.Tensor | None = None,
             pooled: torch.Tensor | None = None) -> torch.Tensor:
        """The output bias of `items` [...] (None: all, [V]) from their own biases `own`;
        `pooled`: their `pooled_bias(items)`, where the caller has it already."""
        weight = self.id_weight() if items is None else self.id_weight()[items]
        return own * weight + (self.pooled_bias(items) if pooled is None else pooled) * (1 - weight)

    def alone(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The vectors [..., H] and biases [...] of `items` (None: every item) from their
        features alone, as a new item has them: what `optim.feature_loss` trains to rank."""
        return self.pooled(items), self.pooled_bias(items)


class FeatureMatch(nn.Module):
    """A logit for each (history, candidate item) from the feature values they share: the sum
    over the candidate's values v of a learnt weight w[v] times log(1 + how many history items
    have v). Popular-in-category counts the same matches with fixed weights; item vectors of a
    few dozen dimensions blur which of thousands of brands a user has bought, and for a new
    item, scored by its features alone, these matches are most of what is known. The weights
    start at 0, so training starts from the model without it."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(config.feature_vocab_size))

    def profile(self, item_values: torch.Tensor, history: torch.Tensor,
                positions: tuple[torch.Tensor, torch.Tensor] | None = None, causal: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each value's weight times log(1 + how many history items have it) (padding and
        [MASK] have no values): [N, U + 1], and `columns` [F], each value's column (U, always
        0, for a value no row holds). Outside training: the rows of `history` [N, T], every
        value a column. In training: the targets at `positions` (rows, columns) of the batch
        `history` [B, T], each counting its whole row, or with `causal` the items up to its
        position; only the values the batch holds have columns."""
        values = item_values[history].long()  # [B, T, slots]
        if positions is None:
            counts = values.new_zeros(values.shape[0], self.weight.shape[0],
                                      dtype=self.weight.dtype)
            flat = values.flatten(1)
            counts.scatter_add_(1, flat, flat.ne(PAD).to(counts))  # padding counts nowhere
            return counts.log1p() * self.weight, torch.arange(len(self.weight),
                                                               device=values.device)
        present, local = torch.unique(values, return_inverse=True)
        columns = torch.full((len(self.weight),), len(present), device=values.device)
        columns[present] = torch.arange(len(present), device=values.device)
        weight = F.pad(self.weight[present], (0, 1))  # the absent column weighs 0
        counts = values.new_zeros(*values.shape[:2], len(weight), dtype=weight.dtype)
        counts.scatter_add_(2, local, values.ne(PAD).to(counts))  # [B, T, U + 1]
        rows, at = positions
        counts = counts.cumsum(1)[rows, at] if causal else counts.sum(1)[rows]  # [N, U + 1]
        return counts.log1p() * weight, columns

    @staticmethod
    def incidence(slots: torch.Tensor, weighted: torch.Tensor) -> torch.Tensor:
        """[S, U + 1]: how often each of S items has each column's value, from the items'
        value `slots` [S, slots] as columns of `weighted` [N, U + 1] (whose dtype it takes):
        `weighted @ incidence.T` is their match logits."""
        incidence = weighted.new_zeros(slots.shape[0], weighted.shape[1])
        return incidence.scatter_add_(1, slots, torch.ones_like(slots, dtype=incidence.dtype))

    def logits(self, item_values: torch.Tensor, profile: tuple[torch.Tensor, torch.Tensor],
               candidates: torch.Tensor) -> torch.Tensor:
        """The match logits of `candidates`: [N] (one per row) -> [N], or shared by every
        row, [S, 1] -> [S, N] (the sampled losses' layout) or [1, S] -> [N, S];
        `profile` is `profile(...)` of the N rows."""
        weighted, columns = profile
        slots = columns[item_values[candidates].long()]  # [N, slots] or [S, 1, slots]
        if candidates.dim() == 1:
            return weighted.gather(1, slots).sum(-1)
        # a bag of rows of [U + 1, N] per candidate: in training 2-4x faster than a gather per
        # slot, in validation 9x
        bags = F.embedding_bag(slots.flatten(0, 1), weighted.T.contiguous(), mode="sum")
        return bags if candidates.shape[1] == 1 else bags.T


class Dropout(nn.Module):
    """`nn.Dropout` with a cheaper mask on the CPU: a uniform draw compared with `p` and kept
    as bools, where `F.dropout` draws a float Bernoulli mask (1.3-1.7x the time forward and
    backward at [256, 184, 64], one thread; docs/performance.md). Elsewhere it is F.dropout."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        return _CpuDropout.apply(x, self.p)


class _CpuDropout(torch.autograd.Function):
    """Zero each element with chance `p` and scale the rest by 1 / (1 - p); the mask is saved
    as bools (a quarter of a float mask) for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand_like(x) >= p
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return x.mul(keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


class Embeddings(nn.Module):
    """Item embedding (row 0 = padding, kept at zero) plus a learned position embedding; with
    item features (`config.has_features`) each item's vector adds those of its features.

    Positions count back from the end (the last column is position 0), so a left-padded sequence
    and the same sequence without padding see identical embeddings for every real item.
    """

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.item = nn.Embedding(config.vocab_size, config.hidden, padding_idx=PAD)
        self.features = ItemFeatureVectors(config) if config.has_features else None
        self.position = nn.Embedding(config.max_len, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        self.dropout = Dropout(config.dropout)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(items.shape[1] - 1, -1, -1, device=items.device)  # [T]: T-1 .. 0
        x = self.item_vectors(items) + self.position(positions)  # [B, T, H]
        return self.dropout(self.norm(x))

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The vectors of `items` [...] -> [..., H]; None: of every entry, [V, H] (the output
        layer's weight)."""
        ids = self.item.weight if items is None else self.item(items)
        return ids if self.features is None else self.features.vectors(ids, items)


class SelfAttention(nn.Module):
    """Multi-head bidirectional self-attention; padded keys are never attended to.

    Attention dropout (training only) drops attention probabilities, or with
    `attention_dropout_on="keys"` a random share of each head's keys for every query of a
    sequence (DropKey, renormalised by the softmax; a query left without keys keeps them all):
    a mask, which PyTorch's fused CPU attention takes, where dropping probabilities forces
    its unfused kernel (docs/performance.md, "Attention dropout").
    """

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.attention_dropout = config.attention_dropout
        self.drop_keys = config.attention_dropout_on == "keys"

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
        if dropout and self.drop_keys:
            kept = keep & (torch.rand(b, self.heads, 1, keep.shape[-1], device=x.device)
                           >= dropout)  # [B, heads, 1, T]
            keep, dropout = torch.where(kept.any(dim=-1, keepdim=True), kept, keep), 0.0
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
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, last: bool = False) -> torch.Tensor:
        """[B, T, H] -> [B, T, H], or with `last` the last position only: [B, 1, H]."""
        attended = self.attention(self.norm1(x), keep, last)
        x = (x[:, -1:] if last else x) + self.dropout(attended)
        return x + self.dropout(self.ff(self.norm2(x)))


class Encoder(nn.Module):
    """Embeddings, N blocks and a final LayerNorm: items [B, T] -> hidden states [B, T, H].
    Bidirectional, or with `config.causal` each position attends to itself and earlier ones."""

    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.causal = config.causal
        self.embeddings = Embeddings(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)

    def forward(self, items: torch.Tensor, last: bool = False) -> torch.Tensor:
        """With `last`, only the last position's state [B, 1, H]: the final block then
        computes nothing the other positions alone need (1.7x fewer products at width 64)."""
        keep = (items != PAD)[:, None, None, :]  # [B, 1, 1, T]
        allowed = causal_mask(keep) if self.causal else keep
        x = self.embeddings(items)  # [B, T, H]
        for depth, block in enumerate(self.blocks, start=1):
            final = last and depth == len(self.blocks)  # the last query row of a causal mask
            x = block(x, keep if final else allowed, final)  # sees every real key
        return self.norm(x)


def causal_mask(keep: torch.Tensor) -> torch.Tensor:
    """[B, 1, 1, T] real keys -> [B, 1, T, T]: each query sees the real keys at or before it,
    and always itself, so a padding query attends to itself rather than to nothing (an empty
    row would give NaN states, and NaN times a zero attention weight is still NaN)."""
    t = keep.shape[-1]
    earlier = torch.ones(t, t, dtype=torch.bool, device=keep.device).tril()  # [T, T]
    itself = torch.eye(t, dtype=torch.bool, device=keep.device)
    return (keep & earlier) | itself


class TransitionBias(nn.Module):
    """A learnt logit for each pair of consecutive items seen in training (previous -> next),
    added to the next item's score. These are the exact transitions a first-order Markov chain
    counts; item vectors of a few dozen dimensions blur them, and on short sequences they
    decide much of the ranking. `keys` (previous * vocab_size + next, ascending) are fixed when
    training starts (`start_at`), with `starts` [V + 1], where each previous item's pairs
    begin; `values` are learnt with the rest."""

    def __init__(self, vocab_size: int, n_pairs: int, width: int = 0) -> None:
        super().__init__()
        self.vocab_size, self.width = vocab_size, width
        self.register_buffer("keys", torch.zeros(n_pairs, dtype=torch.long))
        self.register_buffer("starts", torch.zeros(vocab_size + 1, dtype=torch.long))
        self.values = nn.Parameter(torch.zeros(n_pairs))

    @torch.no_grad()
    def start_at(self, keys: torch.Tensor, counts: torch.Tensor) -> None:
        """Fix the pairs, `keys` [P] ascending (previous * vocab_size + next), and start each
        logit at TRANSITION_START * log(1 + its count in training): a pair seen once would
        otherwise move by about one learning rate per epoch, far too slowly to matter."""
        self.keys.copy_(keys)
        rows = torch.arange(self.vocab_size + 1, device=keys.device) * self.vocab_size
        self.starts.copy_(torch.searchsorted(keys, rows))
        self.values.copy_(TRANSITION_START * counts.to(self.values).log1p())

    def add_rows(self, logits: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """`logits` [N, V] plus, in each row n, the learnt logit of every pair starting at
        `previous[n]` (in place, so no second [N, V] tensor). Training takes exactly those
        pairs; a prediction gathers `width` slots per row, which has fixed shapes and exports."""
        if len(self.keys) == 0:
            return logits
        if not self.training:
            return self._add_rows_fixed(logits, previous)
        rows, pairs = self.row_pairs(previous)
        columns = self.keys[pairs] % self.vocab_size
        return logits.index_put_((rows, columns), self.values[pairs].to(logits.dtype),
                                 accumulate=True)

    def row_pairs(self, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair starting at each row's item `previous` [N]: its row [M] and its index
        into `keys` [M] (the keys are sorted by previous item, so each row's pairs sit
        together)."""
        low = self.starts[previous]  # [N] first pair of each row
        counts = self.starts[previous + 1] - low  # [N]
        rows = torch.repeat_interleave(torch.arange(len(previous), device=low.device), counts)
        starts = torch.repeat_interleave(low - (counts.cumsum(0) - counts), counts)
        return rows, starts + torch.arange(len(rows), device=low.device)

    def _add_rows_fixed(self, logits: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """`add_rows` through `width` slots per row [N, width]; the unused ones add 0 to
        column 0 (padding, whose logit is -inf anyway)."""
        low, high = self.starts[previous], self.starts[previous + 1]  # [N]
        slots = low[:, None] + torch.arange(self.width, device=logits.device)  # [N, D]
        used = slots < high[:, None]
        slots = slots.clamp(max=len(self.keys) - 1)
        columns = torch.where(used, self.keys[slots] % self.vocab_size, 0)
        values = torch.where(used, self.values[slots], 0.0).to(logits.dtype)
        return logits.scatter_add_(1, columns, values)

    def pairs(self, previous: torch.Tensor, following: torch.Tensor) -> torch.Tensor:
        """The learnt logit of each pair (`previous`, `following`, of one shape or shapes that
        broadcast), 0 for a pair never seen in training; `shared` is faster for [N] rows
        against [S] shared candidates."""
        key = previous * self.vocab_size + following
        if len(self.keys) == 0:
            return torch.zeros(key.shape, device=key.device)
        found = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
        return torch.where(self.keys[found] == key, self.values[found], 0.0)

    def shared(self, previous: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """`pairs` of each row's item `previous` [N] with every one of `candidates` [S]
        (repeats allowed) -> [S, N], the sampled losses' layout. Each row's own pairs are
        looked up among the sorted candidates: searching all N * S pairs among the keys was a
        quarter of a `short` step on Amazon Beauty (docs/performance.md)."""
        out = torch.zeros(len(candidates), len(previous), device=candidates.device)
        if len(self.keys) == 0:
            return out
        rows, pairs = self.row_pairs(previous)
        ordered, order = candidates.sort()
        following = self.keys[pairs] % self.vocab_size
        first = torch.searchsorted(ordered, following)
        hits = torch.searchsorted(ordered, following, right=True) - first  # [M], mostly 0
        pair = torch.repeat_interleave(torch.arange(len(pairs), device=out.device), hits)
        nth = torch.arange(len(pair), device=out.device) - torch.repeat_interleave(
            hits.cumsum(0) - hits, hits)  # which of a repeated candidate
        return out.index_put((order[first[pair] + nth], rows[pair]), self.values[pairs[pair]])


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
        self.transitions = (TransitionBias(config.vocab_size, config.transition_pairs,
                                           config.transition_width)
                            if config.transitions else None)
        self.feature_match = (FeatureMatch(config)
                              if config.feature_match and config.has_features else None)
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
        features = self.encoder.embeddings.features
        if features is not None:  # each value at its items' mean, for items seen without id
            features.value_bias.copy_(value_means(log_frequency, features.item_values,
                                                  features.has_id, len(features.value_bias)))

    @torch.no_grad()
    def set_item_features(self, item_values: torch.Tensor, has_id: torch.Tensor) -> None:
        """Give each vocabulary entry its feature values (`item_values` [V, slots], 0 pads)
        and say whose id embedding counts (`has_id` [V] bool: items seen in training)."""
        features = self.encoder.embeddings.features
        features.set_values(item_values)
        known = has_id.to(features.has_id)
        known[[PAD, -1]] = 1
        features.has_id.copy_(known)

    def with_new_items(self, item_values: torch.Tensor) -> BERT4Rec:
        """This model (in eval mode) with more items: the rows of `item_values` [m, slots]
        become vocabulary indices n_items + 1 .. n_items + m, with features only; [MASK]
        moves to the end. Every other weight is this model's."""
        if self.encoder.embeddings.features is None:
            raise ValueError("a model without item features cannot take new items")
        added = len(item_values)
        grown = BERT4Rec(replace(self.config, vocab_size=self.config.vocab_size + added))
        state = self.state_dict()
        prefix = "encoder.embeddings."
        new_rows = {f"{prefix}item.weight": torch.zeros(added, self.config.hidden),
                    "output_bias": torch.zeros(added),
                    f"{prefix}features.item_values": item_values,
                    f"{prefix}features.has_id": torch.zeros(added)}
        for key, rows in new_rows.items():
            before = state[key]
            state[key] = torch.cat([before[:-1], rows.to(before), before[-1:]])
        if self.transitions is not None:  # pair keys re-encoded over the larger vocabulary
            keys, size = state["transitions.keys"], self.config.vocab_size
            state["transitions.keys"] = keys // size * grown.config.vocab_size + keys % size
            starts = state["transitions.starts"]  # new items and [MASK] start no pair
            state["transitions.starts"] = torch.cat([starts[:size - 1],
                                                     starts[-1:].expand(added + 2)])
        grown.load_state_dict(state)
        return grown.to(self.output_bias.device).eval()

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
        project: bool = True, previous: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [N, V] at positions where `targets` [B, T] is True (or at the N positions
        `targets` = (rows, columns) indexes, repeats allowed), else [B, V] at T - 1.

        With `project=False` it stops before the output layer and returns the transformed
        states [N or B, H], for losses that score only some items (sampled softmax).
        `previous` [N]: the item before each target, for the transition logits (training
        passes it; a prediction takes the history's newest item).
        """
        features = self.encoder.embeddings.features
        if features is not None and self.training and features.id_dropout > 0:
            features.hide_ids()  # this step's, for the inputs and the output layer alike
        if targets is None:
            if self.config.causal:
                items = newest_item_last(items, self.config.mask_token)
            if self.transitions is not None:  # the newest history item: before [MASK], or last
                previous = newest_history_item(items, self.config.causal)
            selected = self.encoder(items, last=True)[:, -1]  # [B, H]
            history = items
        else:
            selected = self.encoder(items)[targets]  # [N, H]
            history = None
        if not project:
            return self.transform(selected)
        return self.project(selected, previous, history)

    @property
    def output_weight(self) -> torch.Tensor:
        """The output layer's item matrix [V, H]: the input item vectors (tied)."""
        return self.encoder.embeddings.item_vectors()

    @property
    def item_bias(self) -> torch.Tensor:
        """The output layer's bias [V]: `output_bias`, or with item features, for an item
        whose id does not count (`ItemFeatureVectors`), the mean bias of its values."""
        features = self.encoder.embeddings.features
        return self.output_bias if features is None else features.bias(self.output_bias)

    def output_rows(self, items: torch.Tensor,
                    alone: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`output_weight` and `item_bias` at `items` [...] only -> [..., H] and [...]: what a
        sampled loss needs, without pooling every item's values. `alone`: the items'
        `ItemFeatureVectors.alone`, where the caller has it already."""
        ids, own = self.encoder.embeddings.item(items), self.output_bias[items]
        features = self.encoder.embeddings.features
        if features is None:
            return ids, own
        pooled, pooled_bias = features.alone(items) if alone is None else alone
        return features.vectors(ids, items, pooled), features.bias(own, items, pooled_bias)

    def output_layer_bias(self) -> torch.Tensor:
        """`item_bias` [V] with -inf for padding and [MASK], which are never predictions."""
        return self.item_bias.index_fill(0, self.not_items, float("-inf"))

    def project(self, hidden: torch.Tensor, previous: torch.Tensor | None = None,
                history: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [N, H] -> logits [N, V] through the head and the tied item embedding,
        plus the transition logits of the items `previous` [N] and the feature matches with
        each row's `history` items [N, T] where the model has them.

        Padding and [MASK] are never predictions: their logits are -inf, which also keeps the
        output loss from moving their embeddings. The -inf goes into the bias [V] rather than
        onto the logits, so no second [N, V] tensor is written (nor its gradient): a fifth of
        a `fast` step on a 27k-item catalogue. The logits are the same.
        """
        return self.score(self.transform(hidden), previous, history)

    def score(self, h: torch.Tensor, previous: torch.Tensor | None = None,
              history: torch.Tensor | None = None) -> torch.Tensor:
        """`project` from the head's output `h` [N, H] (what `forward(project=False)` gives)."""
        logits = F.linear(h, self.output_weight, self.output_layer_bias())  # [N, V]
        if self.transitions is not None and previous is not None:
            logits = self.transitions.add_rows(logits, previous)
        if self.feature_match is not None and history is not None:
            logits = logits + self.match_logits(history)(self.all_items[None, :])
        return logits

    def match_logits(self, history: torch.Tensor,
                     positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> PairLogits:
        """The feature-match logits (`FeatureMatch`) of rows with `history` items [N, T] (in
        training: of the targets at `positions` of the batch `history`), as a function of
        candidates: [N] -> [N], [S, 1] -> [S, N], [1, S] -> [N, S]."""
        return self.profile_logits(self.feature_profile(history, positions))

    def feature_profile(self, history: torch.Tensor,
                        positions: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """`FeatureMatch.profile` of `history` (and `positions`), by this model's features."""
        item_values = self.encoder.embeddings.features.item_values
        return self.feature_match.profile(item_values, history, positions, self.config.causal)

    def profile_logits(self, profile: tuple[torch.Tensor, torch.Tensor]) -> PairLogits:
        """`match_logits` from a `feature_profile`."""
        item_values = self.encoder.embeddings.features.item_values
        return lambda candidates: self.feature_match.logits(item_values, profile, candidates)

    def match_columns(self, profile: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor | None:
        """Every item's `FeatureMatch.incidence` [V, U + 1] for a training `feature_profile`
        whose values fit INCIDENCE_COLUMNS (None otherwise). Appended to the item table, as
        the profile is to the hidden states, they add the matches to the logits of a full
        softmax that stays fused."""
        weighted, columns = profile
        if weighted.shape[1] > INCIDENCE_COLUMNS:
            return None
        slots = columns[self.encoder.embeddings.features.item_values.long()]  # [V, slots]
        return self.feature_match.incidence(slots, weighted)

    @property
    def all_items(self) -> torch.Tensor:
        """Every vocabulary index [V] (padding and [MASK] get -inf from the bias anyway)."""
        return torch.arange(self.config.vocab_size, device=self.output_bias.device)

    def num_parameters(self) -> int:
        """Count of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def newest_history_item(items: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B]: the newest item of each prediction input's history (PAD for an empty one): a causal
    model's last column, a cloze model's column before [MASK]."""
    if causal:
        return items[:, -1]
    return items[:, -2] if items.shape[1] > 1 else torch.full_like(items[:, 0], PAD)


def newest_item_last(items: torch.Tensor, mask_token: int) -> torch.Tensor:
    """Prediction inputs (history + [MASK], [B, T]) for a causal model, which predicts from the
    state of the newest item: the [MASK] column is dropped. An empty history keeps its [MASK]
    (the model then answers from the bias, near popularity)."""
    if items.shape[1] == 1:  # [MASK] alone: every history is empty
        return items
    history = items[:, :-1]  # [B, T - 1]
    empty = (history == PAD).all(dim=1, keepdim=True)  # [B, 1]
    newest = torch.arange(history.shape[1], device=items.device) == history.shape[1] - 1
    return torch.where(empty & newest, mask_token, history)  # no branch: exportable


def value_means(per_item: torch.Tensor, item_values: torch.Tensor, has_id: torch.Tensor,
                size: int) -> torch.Tensor:
    """For each of `size` feature values, the mean of `per_item` [V] over the items that have
    it and whose id counts (`has_id` [V]); values without such items (and the padding) get
    the mean over all those items. `item_values` [V, slots] lists each entry's values."""
    counted = has_id.bool().clone()
    counted[[PAD, -1]] = False  # padding and [MASK] are not items
    rows = item_values[counted].reshape(-1).long()  # [K * slots]
    weights = per_item[counted, None].expand(-1, item_values.shape[1]).reshape(-1)
    sums = torch.zeros(size, dtype=per_item.dtype, device=per_item.device)
    sums.index_add_(0, rows, weights)
    counts = torch.bincount(rows, minlength=size).to(per_item.dtype)
    overall = per_item[counted].mean() if counted.any() else per_item.new_zeros(())
    means = torch.where(counts > 0, sums / counts.clamp_min(1), overall)
    means[PAD] = overall
    return means
