"""A checkpoint's NLL by position in the piece (tokens 0-256, 256-1k, 1k-4k, 4k+) on its own
validation or test pieces, per corpus: does it remember, or only predict the next few tokens?

    python scripts/position_nll.py [--checkpoint assets/model] [--split val] [--data DIR ...] [--json OUT]

The same figures as `musicgen evaluate` (tokens.gru.by_position), without the baselines and the
continuations: about 40 s for the shipped model on one core.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from musicgen.data import data_root, load_corpus, split_pieces
from musicgen.evaluate import format_positions, piece_scores, position_report, split_metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--data", nargs="*", default=[], help="default: the corpora the checkpoint records")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, tokenizer, config = load_checkpoint(args.checkpoint)
    corpus, _ = load_corpus(data_root(config, args.data), tokenizer)
    pieces = split_pieces(corpus.pieces, config, args.split)
    t0 = time.perf_counter()
    scores = piece_scores(model, pieces, tokenizer, "cpu")
    report = {"checkpoint": args.checkpoint, "split": args.split, "pieces": len(pieces),
              "overall": split_metrics(model, pieces, tokenizer, "cpu", scores),
              "by_position": position_report(pieces, scores), "seconds": round(time.perf_counter() - t0, 1)}
    print(f"{args.checkpoint}: {args.split.upper()} pieces {len(pieces)}, NLL {report['overall']['nll']:.3f}")
    print("\n".join(format_positions(report["by_position"])))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
