"""Rebuild the app's example seeds (assets/examples/*.mid): openings of public-domain pieces.

Two come from music21's bundled corpus (every part re-voiced for piano), two from the Mutopia
Project's piano pieces as rendered to MIDI in the shared data folder (`--mutopia`, default
../shared/data/mutopia beside the repository); assets/examples/ATTRIBUTION.md credits them.
Run: `python scripts/make_examples.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "examples"

# file name -> (corpus path, last measure, quarter notes per minute)
CORPUS = {
    "bach-chorale-bwv66.mid": ("bach/bwv66.6", 4, 80),
    "joplin-maple-leaf-rag.mid": ("joplin/maple_leaf_rag.mxl", 8, 90),
}
# file name -> (file in the Mutopia folder, bars kept from the start); all Public Domain there
MUTOPIA = {
    "mozart-sonata-k331-theme.mid": ("mozart/KV331_1_1_tema.mid", 8),
    "satie-gymnopedie-1.mid": ("satie/gymnopedie_1.mid", 16),
}


def piano_opening(work: str, last_measure: int, qpm: float):
    """The first bars of a corpus work, every part played by a piano, at a set tempo."""
    from music21 import bar, corpus, instrument, repeat, stream, tempo

    score = corpus.parse(work).measures(1, last_measure)
    for part in score.parts:
        for old in part.recurse().getElementsByClass(instrument.Instrument):
            old.activeSite.remove(old)
        part.insert(0, instrument.Piano())
    for mark in score.recurse().getElementsByClass((tempo.MetronomeMark, repeat.RepeatExpression)):
        mark.activeSite.remove(mark)
    for measure in score.recurse().getElementsByClass(stream.Measure):  # a cut opening has no repeats
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = None
    score.parts[0].getElementsByClass(stream.Measure).first().insert(0, tempo.MetronomeMark(number=qpm))
    return score


def midi_opening(path: Path, bars: int):
    """The first `bars` bars of a MIDI file, notes cut at the last bar line, as a symusic Score."""
    from musicgen import tokenizer as tk

    score = tk.read_midi(path)
    end = int(tk.bar_starts(score)[bars])
    out = score.clip(0, end, clip_end=False)
    for track in out.tracks:
        for n in track.notes:
            n.duration = min(n.duration, end - n.time)
    return out


def main() -> None:
    """Write every example MIDI and print a summary line for each."""
    import symusic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutopia", type=Path, default=ROOT.parent / "shared" / "data" / "mutopia")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (work, last, qpm) in CORPUS.items():
        piano_opening(work, last, qpm).write("midi", fp=OUT / name)
    for name, (file, bars) in MUTOPIA.items():
        midi_opening(args.mutopia / file, bars).dump_midi(str(OUT / name))
    for name in [*CORPUS, *MUTOPIA]:
        s = symusic.Score(str(OUT / name))
        print(f"wrote {name}: {s.note_num()} notes, {(OUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
