"""The item vocabulary's layout, shared by the corpus, the batches, the model and the scorers.

0 is padding, 1..n_items are the items in ascending original id and n_items + 1 is [MASK],
so vocab_size = n_items + 2 and [MASK] is always vocab_size - 1.
"""

PAD = 0
"""The padding index: never an item, never a prediction; its embedding stays zero."""
