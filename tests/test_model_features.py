"""Item features inside the network (issue 25): item vectors add their values' mean embedding,
items without a trained id have features only, training hides some ids, new items join
without retraining, and a model without features is what it always was."""

from dataclasses import replace

import pytest
import torch

from bert4rec.model import BERT4Rec, BERT4RecConfig, value_means

VALUES = torch.tensor([
    [0, 0, 0],  # padding
    [2, 3, 0], [2, 0, 0], [3, 4, 5], [1, 0, 0], [4, 5, 0],
    [0, 0, 0],  # [MASK]
])
HAS_ID = torch.tensor([True, True, True, True, True, False, True])  # item 5 never trained on


@pytest.fixture
def model() -> BERT4Rec:
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=7, max_len=6, hidden=8, layers=1, heads=2,
                            feature_vocab_size=6, feature_slots=3, item_features="genres",
                            id_dropout=0.5)
    model = BERT4Rec(config)
    model.set_item_features(VALUES, HAS_ID)
    with torch.no_grad():
        model.encoder.embeddings.features.value_bias.normal_()
        model.output_bias.normal_()
    return model.eval()


def test_a_sampled_loss_takes_the_rows_of_the_whole_table_in_training_too(model):
    model.train()
    torch.manual_seed(1)
    model.encoder.embeddings.features.hide_ids()  # this step's hidden ids count in both
    items = torch.tensor([5, 1, 3, 3])
    hidden = model.encoder.embeddings.features.id_weight()[items]
    assert hidden.tolist() == [0.0, 0.0, 1.0, 1.0]  # no id; hidden this step; kept
    weight, bias = model.output_rows(items)
    torch.testing.assert_close(weight, model.output_weight[items])
    torch.testing.assert_close(bias, model.item_bias[items])


def test_scoring_pools_the_values_once_while_their_embeddings_stay_as_they_are(model):
    with torch.no_grad():
        first = model.encoder.embeddings.features.pooled()
        assert model.encoder.embeddings.features.pooled() is first  # kept between batches
        before = model.output_weight
        model.encoder.embeddings.features.values.weight[1:].add_(1.0)  # as an optimiser step
        after = model.output_weight
    torch.testing.assert_close(after[5], before[5] + 1.0)  # item 5 has features only
    assert model.encoder.embeddings.features.pooled().requires_grad  # autograd: never kept


def test_scores_follow_a_fused_optimiser_step_which_leaves_versions_as_they_were(model):
    features = model.encoder.embeddings.features
    with torch.no_grad():
        before = features.pooled()  # kept, as validation keeps it between batches
    model.train()
    features.values.weight.grad = torch.ones_like(features.values.weight)
    torch.optim.AdamW(model.parameters(), lr=0.1, fused=True).step()  # no version bump
    model.eval()
    with torch.no_grad():
        after = features.pooled()
    torch.testing.assert_close(after, features._every_mean())
    assert not torch.allclose(after[1:-1], before[1:-1])


def test_a_model_without_features_keeps_its_weights_and_tied_output(model):
    torch.manual_seed(0)
    plain = BERT4Rec(BERT4RecConfig(vocab_size=7, max_len=6, hidden=8, layers=1, heads=2))
    assert plain.encoder.embeddings.features is None
    assert not any("features" in key for key in plain.state_dict())
    assert plain.output_weight is plain.encoder.embeddings.item.weight
    assert plain.item_bias is plain.output_bias


def test_item_vectors_are_the_id_plus_the_mean_of_the_values_and_cold_items_have_features_only(
        model):
    ids = model.encoder.embeddings.item.weight
    values = model.encoder.embeddings.features.values.weight
    table = model.output_weight  # [V, H]
    torch.testing.assert_close(table[1], ids[1] + (values[2] + values[3]) / 2)
    torch.testing.assert_close(table[3], ids[3] + values[3:6].mean(0))
    torch.testing.assert_close(table[5], (values[4] + values[5]) / 2)  # no id: features only
    torch.testing.assert_close(table[6], ids[6])  # [MASK] has no features
    bias, value_bias = model.item_bias, model.encoder.embeddings.features.value_bias
    torch.testing.assert_close(bias[:5], model.output_bias[:5])
    torch.testing.assert_close(bias[5], (value_bias[4] + value_bias[5]) / 2)
    items = torch.tensor([[0, 1, 5, 6]])
    embedded = model.encoder.embeddings.item_vectors(items)
    torch.testing.assert_close(embedded[0, 1:], table[[1, 5, 6]])  # inputs use the same vectors
    h = torch.randn(2, 8)
    logits = model.project(h)
    torch.testing.assert_close(logits[:, 1:-1], model.transform(h) @ table[1:-1].T + bias[1:-1])


def test_training_hides_the_same_ids_in_the_inputs_and_the_output_layer_and_eval_none(model):
    model.train()
    torch.manual_seed(1)
    model(torch.tensor([[1, 2, 6]]))  # a training forward draws the step's hidden ids
    features = model.encoder.embeddings.features
    kept = features.id_weight()
    assert kept[0] == kept[-1] == 1 and kept[5] == 0  # padding and [MASK] never, item 5 never
    hidden = [i for i in range(1, 5) if kept[i] == 0]
    assert hidden, "with id_dropout 0.5 some of four items are hidden (seed 1)"
    pooled = features.pooled()
    table = model.output_weight
    for item in hidden:
        torch.testing.assert_close(table[item], pooled[item])
        embedded = model.encoder.embeddings.item_vectors(torch.tensor([item]))
        torch.testing.assert_close(embedded[0], pooled[item])
    model.eval()
    assert torch.equal(features.id_weight(), HAS_ID.float())


def test_the_sparse_training_path_equals_the_gathered_one(model):
    features = model.encoder.embeddings.features
    gathered = features.pooled()  # eval: gathered and summed
    model.train()
    torch.testing.assert_close(features.pooled(), gathered)  # training: a sparse product


def test_value_biases_start_at_the_mean_log_frequency_of_their_trained_items():
    log_frequency = torch.tensor([0.0, -1.0, -2.0, -3.0, -4.0, -9.0, 0.0])
    means = value_means(log_frequency, VALUES, HAS_ID.float(), 6)
    overall = -2.5  # items 1-4; item 5 has no trained id
    assert means.tolist() == [overall, -4.0, -1.5, -2.0, -3.0, -3.0]


def test_new_items_join_with_features_only_and_old_scores_stay(model):
    histories = torch.tensor([[1, 2, 6], [0, 3, 6]])  # [MASK] last
    before = model(histories)
    grown = model.with_new_items(torch.tensor([[2, 3, 0], [4, 0, 0]]))
    assert grown.config.vocab_size == 9 and grown.config.mask_token == 8
    moved = torch.tensor([[1, 2, 8], [0, 3, 8]])
    after = grown(moved)
    torch.testing.assert_close(after[:, :6], before[:, :6])  # the old items, padding included
    assert after[:, 8].eq(float("-inf")).all()  # [MASK] moved to the end
    features = grown.encoder.embeddings.features
    values = features.values.weight
    torch.testing.assert_close(grown.output_weight[6], (values[2] + values[3]) / 2)
    torch.testing.assert_close(grown.item_bias[7], features.value_bias[4])
    plain = BERT4Rec(BERT4RecConfig(vocab_size=7, max_len=6, hidden=8, layers=1, heads=2))
    with pytest.raises(ValueError, match="without item features cannot take new items"):
        plain.with_new_items(torch.tensor([[1]]))


def test_the_config_refuses_features_without_slots():
    from bert4rec.errors import SettingsError

    with pytest.raises(SettingsError, match="both 0 or neither"):
        BERT4RecConfig(vocab_size=7, feature_vocab_size=6)


def test_new_items_keep_the_learnt_transitions_of_the_old_ones():
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=7, max_len=6, hidden=8, layers=1, heads=2,
                            feature_vocab_size=6, feature_slots=3, item_features="genres",
                            transitions=True, transition_pairs=2, transition_width=1)
    model = BERT4Rec(config)
    model.set_item_features(VALUES, HAS_ID)
    model.transitions.start_at(torch.tensor([2 * 7 + 3, 4 * 7 + 1]), torch.ones(2))
    with torch.no_grad():
        model.transitions.values.copy_(torch.tensor([5.0, 9.0]))
    model.eval()
    histories = torch.tensor([[1, 2, 6], [0, 4, 6]])  # newest items 2 and 4, [MASK] last
    before = model(histories)
    grown = model.with_new_items(torch.tensor([[2, 3, 0]]))
    after = grown(torch.tensor([[1, 2, 7], [0, 4, 7]]))
    torch.testing.assert_close(after[:, :6], before[:, :6])
    assert grown.transitions.pairs(torch.tensor([2, 4]), torch.tensor([3, 1])).tolist() == [5, 9]


def matching_model() -> BERT4Rec:
    """The fixture's network with feature matches, their weights 0, 1, ... 5 by value."""
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=7, max_len=6, hidden=8, layers=1, heads=2,
                            feature_vocab_size=6, feature_slots=3, item_features="genres",
                            feature_match=True)
    model = BERT4Rec(config)
    model.set_item_features(VALUES, HAS_ID)
    return model.eval()


def test_feature_matches_count_the_history_items_sharing_each_of_an_items_values():
    model = matching_model()
    histories = torch.tensor([[1, 2, 6], [0, 3, 6]])  # [MASK] last
    before = model(histories)  # weights 0: the model without matches
    with torch.no_grad():
        model.feature_match.weight.copy_(torch.arange(6.0))
    after = model(histories)
    log2, log3 = torch.log(torch.tensor(2.0)), torch.log(torch.tensor(3.0))
    # row 0 holds value 2 twice (items 1, 2) and value 3 once; row 1 values 3, 4 and 5 once
    expected = torch.stack([
        torch.stack([2 * log3 + 3 * log2, 2 * log3, 3 * log2, 0 * log2, 0 * log2]),
        torch.stack([3 * log2, 0 * log2, (3 + 4 + 5) * log2, 0 * log2, (4 + 5) * log2])])
    torch.testing.assert_close(after[:, 1:6] - before[:, 1:6], expected)
    torch.testing.assert_close(after[:, [0, 6]], before[:, [0, 6]])  # still -inf


@pytest.mark.parametrize("causal", [False, True])
def test_training_counts_each_targets_row_or_prefix_as_prediction_counts_a_history(causal):
    model = matching_model()
    model.config = replace(model.config, causal=causal)
    with torch.no_grad():
        model.feature_match.weight.normal_()
    batch = torch.tensor([[1, 2, 6], [0, 3, 5], [0, 0, 4]])
    positions = (torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 2, 2]))
    seen = torch.tensor([[1, 2, 6], [1, 2, 6], [0, 3, 5], [0, 0, 4]])  # each target's row
    if causal:
        seen[0, 2] = 0  # the target at column 1 counts columns 0 and 1
    candidates = torch.tensor([[1, 2, 3, 4, 5, 1]])
    targets = torch.tensor([3, 5, 1, 2])
    predicted = model.match_logits(seen)
    model.train()
    trained = model.match_logits(batch, positions)  # only the batch's values have columns
    torch.testing.assert_close(trained(candidates), predicted(candidates))
    torch.testing.assert_close(trained(candidates.T), predicted(candidates).T)  # [S, N]
    torch.testing.assert_close(trained(targets), predicted(targets[None, :]).diagonal())
