"""The critic's subcommands of `musicgen` (musicgen/cli.py calls `register`):

    classify FILE [--json] [--classifier DIR]
    critic train --data DIR [--out runs/classifier] [flags]
    critic crossval --data DIR [--folds 5] [--out DIR]   (or --pool RUN ..., --rescore RUN)
    critic retest --out DIR --max-clips N [--key-shifts K] [--classifier DIR [DIR ...]]

Handlers return the exit status and raise MusicgenError for user errors (the main CLI prints
those as one line); they import the heavy modules only when run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from musicgen.config import add_dataclass_args, from_args
from musicgen.resources import CLASSIFIER_DIR


def cmd_classify(args) -> int:
    """Print which composer FILE sounds like: one line, or {probabilities, top} as JSON."""
    from musicgen.critic.api import classify_file, load_classifier, sounds_like

    result = classify_file(args.file, load_classifier(args.classifier or CLASSIFIER_DIR))
    if args.json:
        rounded = {"probabilities": {c: round(p, 4) for c, p in result["probabilities"].items()},
                   "top": result["top"]}
        print(json.dumps(rounded))
    else:
        print(f"{Path(args.file).name}: {sounds_like(result)}")
    return 0


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # a shared machine: one core per run (--workers renders on more)


def _recipe_classes() -> tuple[type, type, type]:
    """TrainConfig, ModelConfig, FeatureConfig: the flags of a training recipe."""
    from musicgen.critic.features import FeatureConfig
    from musicgen.critic.model import ModelConfig
    from musicgen.critic.train import TrainConfig

    return TrainConfig, ModelConfig, FeatureConfig


def cmd_train(args) -> int:
    from musicgen.critic.train import train_classifier

    one_thread()
    train_classifier(*(from_args(cls, args) for cls in _recipe_classes()))
    return 0


def cmd_crossval(args) -> int:
    from musicgen.critic import crossval

    one_thread()
    tcls, mcls, fcls = _recipe_classes()
    # a re-scored run keeps its own feature settings: only the test-time ones come from here
    fcfg = None if args.rescore else from_args(fcls, args)
    crossval.run(from_args(tcls, args), from_args(mcls, args), fcfg, folds=args.folds,
                 pool=args.pool, rescore_run=args.rescore, max_clips=args.max_clips,
                 key_shifts=args.key_shifts, baseline_only=args.baseline_only, gru_only=args.gru_only)
    return 0


def cmd_retest(args) -> int:
    from musicgen.critic.retest import retest_classifier

    one_thread()
    retest_classifier(args.classifier, args.out, args.data, args.cache, args.max_clips, args.key_shifts)
    return 0


def _recipe_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of TrainConfig, ModelConfig (but the two set from the data) and FeatureConfig."""
    tcls, mcls, fcls = _recipe_classes()
    add_dataclass_args(parser, tcls)
    add_dataclass_args(parser, mcls, skip=("n_mels", "n_classes"))
    add_dataclass_args(parser, fcls)


def register(sub) -> None:
    """Add `classify` and `critic train|crossval|retest` to a subparsers object."""
    tcls = _recipe_classes()[0]
    c = sub.add_parser("classify", help="which composer a recording or MIDI file sounds like")
    c.add_argument("file", help=".wav/.mp3/.ogg/.flac or .mid/.midi")
    c.add_argument("--json", action="store_true", help="print {probabilities, top} as JSON")
    c.add_argument("--classifier", default=None, help="classifier folder (default: assets/classifier)")
    c.set_defaults(func=cmd_classify)

    critic = sub.add_parser("critic", help="train, cross-validate or retest the style critic")
    steps = critic.add_subparsers(dest="critic_command", required=True)
    t = steps.add_parser("train", help="render the corpus, train the classifier, report on test pieces")
    _recipe_flags(t)
    t.set_defaults(func=cmd_train)

    cv = steps.add_parser("crossval", help="k-fold piece-level accuracy of the GRU and the baseline")
    _recipe_flags(cv)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--pool", nargs="+", metavar="RUN", default=None,
                    help="instead of training: average the GRU of finished runs (seeds) into one")
    cv.add_argument("--rescore", metavar="RUN", default=None,
                    help="instead of training: judge RUN's fold models again with --max-clips and "
                         "--key-shifts (all else as RUN; its baseline too)")
    cv.add_argument("--baseline-only", action="store_true", help="train and test only the baseline")
    cv.add_argument("--gru-only", action="store_true",
                    help="train and test only the GRU (a later --rescore of the run judges the baseline)")
    cv.set_defaults(func=cmd_crossval)

    r = steps.add_parser("retest", help="judge a saved classifier's held-out pieces again with other "
                                        "test-time settings (clips per piece, key shifts)")
    r.add_argument("--classifier", nargs="+", default=[str(CLASSIFIER_DIR)],
                   help="a classifier folder, or several trained alike (seeds): averaged as one")
    r.add_argument("--out", required=True, help="writes OUT/best (the classifier) and OUT/confusion.png")
    r.add_argument("--data", default="", help="corpus folder (default: the one it was trained on)")
    r.add_argument("--cache", default=tcls.cache)
    r.add_argument("--max-clips", type=int, required=True)
    r.add_argument("--key-shifts", type=int, default=0)
    r.set_defaults(func=cmd_retest)
