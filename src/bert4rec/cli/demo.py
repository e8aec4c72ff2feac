"""`bert4rec demo`: from nothing to recommendations in one command.

Finds ml-latest-small (in --data-dir, $BERT4REC_DATA_DIR or the user cache; downloads it
into the cache, checksum verified, when absent), trains the `fast` preset adapted to the
small data set, with progress bars, and prints what to watch after the founding document's
Harry Potter films. A finished run in --out is reused; an interrupted one is resumed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from bert4rec.cli.formatting import format_table
from bert4rec.cli.terminal import printable
from bert4rec.config import preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.data.download import download
from bert4rec.data.movielens import locate
from bert4rec.recommender import Recommender
from bert4rec.rundir import CONFIG, METRICS
from bert4rec.train import fit

RELEASE = "ml-latest-small"
PRESET = "fast"
SMALL_DATA = {
    "masking.windows_per_sequence": 8, "loop.batch_size": 32, "loop.epochs": 80, "optim.lr": 3e-3,
    "model.max_len": 50, "model.dropout": 0.1, "masking.mask_prob": 0.2,
    "masking.last_item_share": 0.5, "masking.last_item_prefix": 1.0, "loop.refit": True,
}
"""ml-latest-small has 603 users: more windows per user, smaller batches and more epochs give
BERT4Rec enough steps, and on so little data the regularised shape wins (50-item windows,
dropout 0.1, 20% masking: test NDCG@10 0.0282 against 0.0181 with `fast`'s own values). Half
the samples predicting the next item of a random prefix, then a refit on the validation
items, lift it to 0.0347 (docs/training-recipe.md, "Session 5")."""


def demo(data_dir: str | None, out: str | Path, query: list[str]) -> int:
    """Train (or reuse) the demo run in `out`, then print recommendations for `query`."""
    out = Path(out)
    if (out / METRICS).is_file():
        print(f"using the finished run in {out} (delete it to train again)")
    else:
        train(data_dir, out)
    rec = Recommender.load(out)
    result = rec.recommend(query, k=10, explain=True)
    print("\nAfter watching:")
    for entry in result.history:
        print(f"  {printable(entry.title)}")
    print(f"\nbert4rec recommends ({out}):")
    print(format_table(result, explain=True))
    print(f"\nMore: bert4rec recommend {out} \"The Matrix\" --explain   |   bert4rec serve {out}")
    return 0


def train(data_dir: str | None, out: Path) -> None:
    """The fast preset with the SMALL_DATA changes on ml-latest-small, resuming an interrupted
    run in `out`."""
    try:
        source = locate(RELEASE, data_dir)
    except FileNotFoundError:
        print(f"{RELEASE} not found locally; downloading it (about 1 MB)")
        source = download(RELEASE, data_dir)
    settings = PrepareSettings()
    corpus = load_corpus(source, settings, data_dir=data_dir)
    resume = (out / CONFIG).is_file()
    stats = corpus.statistics()
    print(
        f"{'resuming' if resume else 'training'} the {PRESET!r} preset with the demo's "
        f"small-data changes on {source} "
        f"({stats['users']:,} users, {stats['items']:,} items) into {out}"
    )
    result = fit(corpus, preset(PRESET).override(SMALL_DATA), out,
                 data={"source": RELEASE, **asdict(settings)}, resume=resume)
    if result.test:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in result.test.items()
                            if isinstance(v, float))
        how = "refit to" if result.selected_test is not None else "best"
        print(f"test ({how} epoch {result.best_epoch}): {figures}")
