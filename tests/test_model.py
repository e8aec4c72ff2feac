"""BERT4Rec network: shapes, tied output weights, padding invariance, config round trip."""

import pytest
import torch

from bert4rec.model import BERT4Rec, BERT4RecConfig, Dropout


@pytest.fixture
def model() -> BERT4Rec:
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=30, max_len=12, hidden=16, layers=2, heads=2)
    return BERT4Rec(config).eval()


def test_training_logits_only_at_targets_and_inference_at_last_position(model):
    items = torch.randint(1, 29, (4, 12))  # [B, T]
    targets = torch.zeros(4, 12, dtype=torch.bool)
    targets[0, 3] = targets[2, 5] = targets[2, 11] = True
    assert model(items, targets).shape == (3, 30)
    assert model(items).shape == (4, 30)
    hidden = model.encoder(items)  # [B, T, H]
    torch.testing.assert_close(model(items, targets)[1], model.project(hidden[2, 5:6])[0])
    torch.testing.assert_close(model(items), model.project(hidden[:, -1]))


def test_inference_computes_only_the_last_position_with_the_same_logits(model):
    """The final block at inference queries from the last position alone: its logits equal
    the full encoder's last column, padded rows included, and training still sees every
    position."""
    items = torch.randint(1, 29, (6, 12))
    items[:, -1] = 29
    items[1, :4] = items[2, :11] = 0  # left padding; row 2 is [MASK] alone
    full = model.project(model.encoder(items)[:, -1])
    torch.testing.assert_close(model(items), full, atol=1e-5, rtol=1e-5)
    assert model.encoder(items, last=True).shape == (6, 1, 16)
    assert model.encoder(items).shape == (6, 12, 16)


def test_output_layer_is_the_item_embedding_plus_a_bias(model):
    names = [name for name, _ in model.named_parameters()]
    assert sum("weight" in n and p.shape[0] == 30 for n, p in model.named_parameters()) == 1
    assert "output_bias" in names
    h = torch.randn(5, 16)
    expected = model.transform(h) @ model.encoder.embeddings.item.weight.T + model.output_bias
    torch.testing.assert_close(model.project(h)[:, 1:-1], expected[:, 1:-1])
    assert model.project(h)[:, [0, -1]].eq(float("-inf")).all()  # never padding or [MASK]
    model.project(h)[:, 1:-1].sum().backward()
    assert model.encoder.embeddings.item.weight.grad.abs().sum() > 0


def test_left_padding_does_not_change_the_prediction(model):
    sequence = torch.tensor([[5, 7, 3, 9, 29]])  # 29 = [MASK] at the end
    padded = torch.cat([torch.zeros(1, 7, dtype=torch.long), sequence], dim=1)  # [1, 12]
    torch.testing.assert_close(model(padded), model(sequence), atol=1e-5, rtol=1e-5)
    other = padded.clone()
    other[0, 6] = 4  # a real item where padding was: the prediction must move
    assert not torch.allclose(model(other), model(padded))


def test_padding_embedding_is_zero_and_stays_untrained(model):
    assert model.encoder.embeddings.item.weight[0].abs().sum() == 0
    model.train()
    items = torch.tensor([[0, 0, 3, 4, 29]])
    model(items, items == 29).logsumexp(-1).sum().backward()
    assert model.encoder.embeddings.item.weight.grad[0].abs().sum() == 0


def test_dropout_zeroes_its_share_scales_the_rest_and_passes_gradients_through_the_kept():
    torch.manual_seed(0)
    x = torch.rand(64, 50, 32) + 1.0  # no element is zero before dropout
    x.requires_grad_()
    drop = Dropout(0.2)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.2) < 0.01  # 102,400 draws: sd 0.0013
    torch.testing.assert_close(y[kept], x.detach()[kept] / 0.8)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    torch.manual_seed(1)
    first = drop(x)
    torch.manual_seed(1)
    assert torch.equal(drop(x), first)  # the global seed decides the mask
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


def test_config_round_trips_through_a_plain_dict():
    config = BERT4RecConfig(vocab_size=100, max_len=50, hidden=32, heads=4, dropout=0.3)
    assert BERT4RecConfig.from_dict(config.to_dict()) == config
    assert config.mask_token == 99


def test_config_refuses_unknown_keys_and_impossible_shapes():
    config = BERT4RecConfig(vocab_size=100, max_len=50, hidden=32, heads=4, dropout=0.3)
    with pytest.raises(ValueError, match="unknown model settings \\['hiden'\\]"):
        BERT4RecConfig.from_dict({**config.to_dict(), "hiden": 3})
    with pytest.raises(ValueError, match=r"model\.vocab_size must be >= 3, got 2"):
        BERT4RecConfig(vocab_size=2)
    with pytest.raises(ValueError, match=r"model\.hidden \(30\) must divide by model\.heads \(4\)"):
        BERT4RecConfig(vocab_size=100, hidden=30, heads=4)


def test_an_untrained_model_started_at_popularity_ranks_by_frequency(model):
    counts = torch.arange(30, dtype=torch.float64) ** 2 + 1  # item 28 most frequent, then 27
    model.start_at_popularity((counts / counts.sum()).log().float())
    histories = torch.randint(1, 29, (6, 12))
    histories[:, -1] = 29  # [MASK]
    top = model(histories).topk(3).indices  # [B, 3]
    assert top.tolist() == [[28, 27, 26]] * 6
