"""Every baseline under every protocol on one source; prints a table, writes benchmarks/out/*.json.

Usage: BERT4REC_DATA_DIR=DIR nice python benchmarks/baselines.py [SOURCE] [--split]
SOURCE defaults to ml-1m/ml-1m.txt under $BERT4REC_DATA_DIR, prepared without any filtering.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.evaluation.baselines import BASELINES, fit_baseline
from bert4rec.evaluation.protocols import Protocol, evaluate

PROTOCOLS = {
    "full": Protocol("full"),
    "sampled-popular": Protocol("sampled", negatives="popular"),
    "sampled-uniform": Protocol("sampled", negatives="uniform"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("BERT4REC_DATA_DIR", ".")) / "ml-1m" / "ml-1m.txt"
    parser.add_argument("source", nargs="?", default=str(default))
    parser.add_argument("--split", choices=("valid", "test"), default="test")
    args = parser.parse_args()
    corpus = load_corpus(
        args.source, PrepareSettings(min_rating=None, min_user_interactions=0), use_cache=False
    )
    rows = []
    print(f"{'baseline':<9} {'protocol':<16} {'NDCG@10':>8} {'HR@10':>8} {'MRR':>8} {'seconds':>8}")
    for name in BASELINES:
        scorer = fit_baseline(name, corpus)
        for label, protocol in PROTOCOLS.items():
            start = time.perf_counter()
            report = evaluate(scorer, corpus, args.split, protocol)
            seconds = time.perf_counter() - start
            m = report.metrics
            print(
                f"{name:<9} {label:<16} {m['NDCG@10']:>8.4f} {m['HR@10']:>8.4f} "
                f"{m['MRR']:>8.4f} {seconds:>8.1f}"
            )
            rows.append({"baseline": name, **report.to_dict(), "seconds": round(seconds, 2)})
    out = Path(__file__).parent / "out" / f"baselines-{Path(args.source).stem}-{args.split}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"source": args.source, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
