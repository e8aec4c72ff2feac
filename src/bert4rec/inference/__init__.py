"""Inference: the Recommender (one recommend path for every face), the catalogue and title
search, explanations and export."""
