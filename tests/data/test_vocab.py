"""The vocabulary's layout: padding 0, the items 1..n, [MASK] n + 1, n + 2 entries in all; the
corpus and the model config answer from it."""

import torch
from tiny_corpus import tiny_corpus

from bert4rec.config import ModelSettings
from bert4rec.data.vocab import PAD, Vocabulary
from bert4rec.model import BERT4RecConfig


def test_the_layout_of_three_items():
    vocab = Vocabulary(3)
    assert (PAD, list(vocab.items), vocab.mask, vocab.size) == (0, [1, 2, 3], 4, 5)
    assert vocab.not_items == (0, 4)
    assert torch.arange(vocab.size)[vocab.item_columns].tolist() == [1, 2, 3]
    assert Vocabulary.of_size(5) == vocab


def test_the_corpus_and_the_model_config_share_it():
    corpus = tiny_corpus([[1, 2, 3], [2, 3, 1, 4]])
    config = BERT4RecConfig.from_shape(ModelSettings(), corpus.vocab_size)
    assert corpus.vocab == config.vocab == Vocabulary(corpus.n_items)
    assert corpus.mask_token == config.mask_token == corpus.n_items + 1
