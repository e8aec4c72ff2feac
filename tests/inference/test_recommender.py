"""Recommender on a tiny run directory: ranking, batching, exclusion, explanations, similarity."""

import polars as pl
import pytest
import torch
from tiny_run import FILMS, make_run_dir

from bert4rec.data.batches import prediction_inputs
from bert4rec.errors import AmbiguousTitleError, ModelDirError, TitleNotFoundError
from bert4rec.inference.recommender import EXPLAIN_MIN_DROP, EXPLAIN_TOP, Recommender

HARRY = [
    "Harry Potter and the Philosopher's Stone",
    5816,
    "harry potter and the prisoner of azkaban",
]


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recommender:
    return Recommender.load(make_run_dir(tmp_path_factory.mktemp("run")))


def full_scores(rec: Recommender, indices: list[int]) -> torch.Tensor:
    """The model's logits with the full max_len input, as evaluation builds it."""
    config = rec.model.config
    with torch.no_grad():
        return rec.model(prediction_inputs([indices], config.max_len, config.mask_token))[0]


def test_recommend_ranks_unseen_items_by_model_score(rec):
    result = rec.recommend(HARRY, k=5)
    assert [entry.item for entry in result.history] == [4896, 5816, 8368]
    assert [r.rank for r in result] == [1, 2, 3, 4, 5]
    assert not {r.item for r in result} & {4896, 5816, 8368}
    scores = full_scores(rec, [7, 8, 9])  # vocabulary indices of the three films
    scores[[0, 7, 8, 9, len(FILMS) + 1]] = float("-inf")
    expected = [FILMS[i - 1][0] for i in scores.topk(5).indices.tolist()]
    assert [r.item for r in result] == expected
    assert [r.score for r in result] == pytest.approx(scores.topk(5).values.tolist(), abs=1e-5)
    top = result[0]
    assert (top.title, list(top.genres)) == next((t, g) for i, t, g in FILMS if i == top.item)


def test_to_frame_has_fixed_columns(rec):
    frame = rec.recommend([1], k=3).to_frame()
    assert frame.columns == ["rank", "item", "title", "genres", "score"]
    assert frame.schema["genres"] == pl.List(pl.String) and frame.height == 3


def test_filter_viewed_false_can_return_history(rec):
    everything = rec.recommend([1, 260], k=100, filter_viewed=False)
    assert len(everything) == len(FILMS) and {1, 260} <= {r.item for r in everything}


def test_k_is_capped_at_the_items_left_and_must_be_positive(rec):
    assert len(rec.recommend([1, 260], k=100)) == len(FILMS) - 2
    with pytest.raises(ValueError, match="k must be a positive"):
        rec.recommend([1], k=0)


LONG = [f[0] for f in FILMS] * 2  # 28 entries, max_len 8 sees the last 7


def test_batch_equals_one_by_one(rec):
    histories = [HARRY, [1], LONG, []]
    batch = rec.recommend_many(histories, k=4, filter_viewed=False)
    for history, result in zip(histories, batch, strict=True):
        single = rec.recommend(history, k=4, filter_viewed=False)
        assert [r.item for r in result] == [r.item for r in single]
        assert [r.score for r in result] == pytest.approx([r.score for r in single], abs=1e-5)


def test_long_histories_keep_the_most_recent_items(rec):
    top = rec.recommend(LONG, k=1, filter_viewed=False)[0]
    recent = full_scores(rec, list(range(1, len(FILMS) + 1))[-7:])
    assert top.score == pytest.approx(recent[1:-1].max().item(), abs=1e-5)


def test_an_unknown_title_raises_with_the_closest_film_first(rec):
    with pytest.raises(TitleNotFoundError, match="Alien") as info:
        rec.recommend(["Alien (1980)"])
    assert info.value.candidates[0][0] == 1214


def test_an_ambiguous_title_asks_for_the_year(rec):
    with pytest.raises(AmbiguousTitleError, match="add the year"):
        rec.recommend(["Hamlet"])


def test_an_unknown_item_id_is_named(rec):
    with pytest.raises(TitleNotFoundError, match="item id 999"):
        rec.recommend([999])


def test_explanations_are_leave_one_out_score_drops(rec):
    history = [4896, 5816, 1214]
    result = rec.recommend(history, k=3, explain=True)
    index = {f[0]: i + 1 for i, f in enumerate(FILMS)}
    with_all = full_scores(rec, [index[i] for i in history])
    for r in result:
        assert len(r.because) <= EXPLAIN_TOP
        assert [c.score_drop for c in r.because] == sorted(
            (c.score_drop for c in r.because), reverse=True)
        for c in r.because:
            without = full_scores(rec, [index[i] for i in history if i != c.item])
            expected = (with_all - without)[index[r.item]].item()
            assert c.score_drop == pytest.approx(expected, abs=1e-4)
            assert c.score_drop >= EXPLAIN_MIN_DROP
    drops = [
        (with_all - full_scores(rec, [index[i] for i in history if i != h]))[index[result[0].item]]
        for h in history
    ]
    assert len(result[0].because) == min(EXPLAIN_TOP, sum(d >= EXPLAIN_MIN_DROP for d in drops))


def test_similar_items_by_cosine(rec):
    result = rec.similar_items("The Matrix", k=3)
    assert result.history[0].item == 2571 and 2571 not in [r.item for r in result]
    weights = rec.model.encoder.embeddings.item.weight.detach()[1:-1]
    cosine = torch.nn.functional.cosine_similarity(weights, weights[5:6], dim=1)
    cosine[5] = -2
    assert [r.item for r in result] == [FILMS[i][0] for i in cosine.topk(3).indices.tolist()]
    assert [r.score for r in result] == pytest.approx(cosine.topk(3).values.tolist(), abs=1e-5)


def test_autocomplete_prefers_what_the_model_finds_popular(rec):
    prior = full_scores(rec, [])[7:11]  # the four Harry Potter films, an empty history
    expected = [FILMS[6 + i][0] for i in prior.argsort(descending=True).tolist()]
    assert [hit.item for hit in rec.catalog.search("harry potter")] == expected


def test_bad_run_directories_are_refused(tmp_path):
    run = make_run_dir(tmp_path / "run")
    (run / "items.parquet").unlink()
    with pytest.raises(ModelDirError, match=r"items.parquet is missing"):
        Recommender.load(run)
    run = make_run_dir(tmp_path / "other")
    pl.read_parquet(run / "items.parquet").head(5).write_parquet(run / "items.parquet")
    with pytest.raises(ModelDirError, match=r"5 rows but the model has 14 items"):
        Recommender.load(run)
