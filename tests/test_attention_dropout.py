"""Attention dropout on keys (`model.attention_dropout_on=keys`, DropKey): random, through the
fused attention, only while training, never a query without keys."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from bert4rec.model import BERT4RecConfig, SelfAttention


def attention(on: str, rate: float = 0.5) -> SelfAttention:
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=20, max_len=12, hidden=16, heads=2,
                            attention_dropout=rate, attention_dropout_on=on)
    return SelfAttention(config)


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Four sequences of 12 positions; the first holds one real item, the rest padding."""
    x = torch.randn(4, 12, 16)
    keep = torch.ones(4, 1, 1, 12, dtype=torch.bool)
    keep[0, ..., :11] = False
    return x, keep


def test_dropped_keys_change_training_outputs_and_leave_evaluation_alone():
    layer, (x, keep) = attention("keys"), inputs()
    exact = attention("keys", rate=0.0).train()
    layer.eval()
    assert torch.equal(layer(x, keep), exact(x, keep))
    layer.train()
    first, second = layer(x, keep), layer(x, keep)
    assert not torch.allclose(first, second)  # a new draw each step
    assert torch.isfinite(first).all() and torch.isfinite(second).all()


def test_a_query_whose_keys_are_all_dropped_keeps_them_all():
    layer, (x, keep) = attention("keys", rate=0.99), inputs()
    layer.train()
    for _ in range(20):
        out = layer(x, keep)
        assert torch.isfinite(out).all()
    # the one-item sequence attends to its one key, whatever was drawn
    assert torch.allclose(out[0], attention("keys", 0.0)(x, keep)[0], atol=1e-6)


def test_keys_go_through_the_fused_attention_without_dropout_and_weights_do_not():
    calls = []
    original = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0):
        calls.append((tuple(attn_mask.shape), dropout_p))
        return original(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)

    x, keep = inputs()
    with mock.patch("bert4rec.model.F.scaled_dot_product_attention", spy):
        attention("keys", 0.2).train()(x, keep)
        attention("weights", 0.2).train()(x, keep)
    assert calls == [((4, 2, 1, 12), 0.0), ((4, 1, 1, 12), pytest.approx(0.2))]
