"""Rebuild docs/examples/generated-*: the shipped model continuing a shipped example seed.

Run: `python scripts/make_doc_example.py`. The output depends only on the checkpoint in
assets/model, the seed and the settings below (same seed, same MIDI).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musicgen.render import render_all
from musicgen.resources import MODEL_DIR
from musicgen.sample import Generator, SampleConfig

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "examples" / "mozart-quartet-k80.mid"  # a quartet: no longer an app example
CONFIG = SampleConfig(bars=16, style="mozart", seed=3)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # --help, nothing more
    out = ROOT / "docs" / "examples"
    result = Generator(MODEL_DIR, "cpu").generate(SEED, CONFIG)
    (out / "generated.mid").write_bytes(result.midi_bytes()[0])
    render_all(result.scores[0], mp3=out / "generated.mp3", svg=out / "generated.svg",
               roll=out / "generated-roll.png", musicxml=out / "generated.musicxml",
               split_tick=result.split_tick, title="Mozart K. 80 opening, continued by musicgen")
    print(result.describe())


if __name__ == "__main__":
    main()
