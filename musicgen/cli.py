"""`musicgen generate|infill|train|evaluate|shape-report|render|bench|classify|critic|fidelity|fit-ending`
(or `python -m musicgen`); flags mirror the config dataclasses."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from musicgen.config import add_dataclass_args, from_args
from musicgen.errors import MusicgenError
from musicgen.resources import CLASSIFIER_DIR


def cmd_train(args) -> int:
    from musicgen.model import ModelConfig
    from musicgen.train import TrainConfig, train

    out = train(from_args(TrainConfig, args), from_args(ModelConfig, args))
    print(f"checkpoints in {out}/best and {out}/last; curves in {out}/loss.csv, {out}/loss.png")
    return 0


def cmd_generate(args) -> int:
    from musicgen.sample import SampleConfig, load_generator

    gen = load_generator(args.checkpoint)
    result = gen.generate(args.seed_midi, from_args(SampleConfig, args))
    return write_outputs(result, args.out, args.only_continuation)


def cmd_infill(args) -> int:
    from musicgen.infill import infill, parse_bars
    from musicgen.sample import SampleConfig, load_generator

    first, stop = parse_bars(args.bars)
    cfg = from_args(SampleConfig, args, skip=("bars",))  # --bars is the range here, not a length
    result = infill(load_generator(args.checkpoint), args.piece, first, stop, cfg)
    return write_outputs(result, args.out)


def write_outputs(result, out: str, only_continuation: bool = False) -> int:
    """Write a Generation's MIDI files (OUT.mid, OUT-2.mid, ...) and say what was made."""
    from musicgen.sample import output_paths

    paths = output_paths(Path(out), len(result.scores))
    for path, data in zip(paths, result.midi_bytes(only_continuation)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(result.describe())
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_shape_report(args) -> int:
    from musicgen.shape_report import main as shape_main

    return shape_main(args)


def cmd_fit_ending(args) -> int:
    from musicgen.ending import main as ending_main

    return ending_main(args)


def cmd_evaluate(args) -> int:
    from musicgen.evaluate import main as evaluate_main

    return evaluate_main(args)


def cmd_render(args) -> int:
    from musicgen.render import render_all

    outputs = {k: getattr(args, k) for k in ("wav", "mp3", "svg", "roll", "musicxml")}
    if not any(outputs.values()):
        raise MusicgenError("name at least one output: --wav, --mp3, --svg, --roll or --musicxml")
    from musicgen.tokenizer import read_midi

    score = read_midi(args.midi)
    timings = render_all(score, soundfont=args.soundfont, title=args.title or Path(args.midi).stem,
                         **outputs)
    for path in outputs.values():
        if path:
            print(f"wrote {path}")
    print(" ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    return 0


def cmd_bench(args) -> int:
    from musicgen.bench import run_bench

    report = run_bench(quick=args.quick, checkpoint=args.checkpoint)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def cmd_fidelity(args) -> int:
    from musicgen import fidelity  # an evaluation of the generator, with the critic as judge
    from musicgen.critic.cli import one_thread

    one_thread()
    fidelity.run(args.checkpoint, args.classifier, args.n, args.bars, args.json, args.data)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    from musicgen.checkpoint import DEFAULT_CHECKPOINT
    from musicgen.evaluate import EvalConfig
    from musicgen.model import ModelConfig
    from musicgen.sample import SampleConfig
    from musicgen.train import TrainConfig

    p = argparse.ArgumentParser(prog="musicgen", description="GRU piano composer")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="continue a seed MIDI or compose from scratch")
    g.add_argument("--seed-midi", default=None, help="MIDI file to continue (default: from scratch)")
    g.add_argument("--out", default="out.mid", help="output MIDI; more variations add -2, -3 ...")
    g.add_argument("--only-continuation", action="store_true", help="write only the new bars")
    g.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    add_dataclass_args(g, SampleConfig)
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("infill", help="rewrite bars of a piece so that they lead into what follows")
    i.add_argument("piece", help="MIDI file whose bars are rewritten")
    i.add_argument("--bars", required=True, help="the bars to rewrite, first-last from 1 (9-12)")
    i.add_argument("--out", default="infill.mid", help="output MIDI; more variations add -2, -3 ...")
    i.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    add_dataclass_args(i, SampleConfig, skip=("bars", "end", "tempo", "vary_tempo", "key", "meter"))
    i.set_defaults(func=cmd_infill)

    t = sub.add_parser("train", help="train a generator on a folder of MIDI files")
    add_dataclass_args(t, TrainConfig)
    add_dataclass_args(t, ModelConfig, skip=("vocab_size", "pad_id"))
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="held-out metrics of a checkpoint against baselines")
    e.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    e.add_argument("--data", nargs="*", default=[], help="the corpora the checkpoint was trained on "
                   "(default: the folders its config records)")
    add_dataclass_args(e, EvalConfig)
    e.add_argument("--json", default=None, help="also write the report here")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("render", help="MIDI to audio, sheet music and piano roll")
    r.add_argument("midi")
    for flag in ("wav", "mp3", "svg", "roll", "musicxml", "soundfont", "title"):
        r.add_argument(f"--{flag}", default=None)
    r.set_defaults(func=cmd_render)

    b = sub.add_parser("bench", help="speed of generation, rendering and the whole path")
    b.add_argument("--quick", action="store_true", help="fewer repeats; under a minute")
    b.add_argument("--json", default=None, help="write the results here")
    b.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    b.set_defaults(func=cmd_bench)

    f = sub.add_parser("fidelity", help="does the critic hear the requested style in generated pieces?")
    f.add_argument("--checkpoint", default=None, help="generator folder (default: assets/model)")
    f.add_argument("--classifier", default=str(CLASSIFIER_DIR))
    f.add_argument("--n", type=int, default=8, help="pieces per style (seeds 0..n-1)")
    f.add_argument("--bars", type=int, default=16)
    f.add_argument("--json", default=None, help="also write the report here")
    f.add_argument("--data", default="", help="corpus folder (default: the classifier's training data)")
    f.set_defaults(func=cmd_fidelity)

    sr = sub.add_parser("shape-report", help="infill joins and --end endings on the held-out pieces")
    sr.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    sr.add_argument("--data", nargs="*", default=[], help="the corpora the checkpoint was trained on")
    sr.add_argument("--pieces", type=int, default=0, help="only the first N test pieces (0: all)")
    sr.add_argument("--corpus", default="", help="only the test pieces of this corpus folder (as evaluate)")
    sr.add_argument("--fills", type=int, default=2, help="fills per piece and method")
    sr.add_argument("--candidates", type=int, nargs="+", default=[1, 4, 16],
                    help="infill methods: takes per fill (1: a plain continuation)")
    sr.add_argument("--end-pieces", type=int, default=30, help="pieces whose endings are compared")
    sr.add_argument("--end-bars", type=int, default=8,
                    help="new bars after the 8-bar seed, with and without --end")
    sr.add_argument("--end-candidates", type=int, default=16, help="last bars --end tries")
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--json", default=None, help="also write the report here")
    sr.set_defaults(func=cmd_shape_report)

    en = sub.add_parser("fit-ending", help="fit the ending model (generate --end) on the training split")
    en.add_argument("--data", nargs="+", required=True, help="corpus folders (split by work as in train)")
    en.add_argument("--out", default="assets/model/ending.json")
    en.add_argument("--seed", type=int, default=0, help="which other bars are drawn as negatives")
    en.set_defaults(func=cmd_fit_ending)

    from musicgen.critic.cli import register  # classify, critic train|crossval|retest

    register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one line and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MusicgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
