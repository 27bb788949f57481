"""Rebuild the app's example seeds (assets/examples/*.mid) from music21's bundled corpus.

Each example is the opening of a public-domain piece, every part re-voiced for piano,
written as a standard MIDI file. Run: `python scripts/make_examples.py`.
"""

from __future__ import annotations

from pathlib import Path

from music21 import bar, corpus, instrument, repeat, stream, tempo

OUT = Path(__file__).resolve().parent.parent / "assets" / "examples"

# file name -> (corpus path, last measure, quarter notes per minute)
EXAMPLES = {
    "bach-chorale-bwv66.mid": ("bach/bwv66.6", 4, 80),
    "beethoven-quartet-op18-1.mid": ("beethoven/opus18no1/movement1.mxl", 8, 160),
    "mozart-quartet-k80.mid": ("mozart/k80/movement1.mxl", 4, 60),
    "joplin-maple-leaf-rag.mid": ("joplin/maple_leaf_rag.mxl", 8, 90),
}


def piano_opening(work: str, last_measure: int, qpm: float):
    """The first bars of a corpus work, every part played by a piano, at a set tempo."""
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


def main() -> None:
    """Write every example MIDI and print a summary line for each."""
    import symusic

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (work, last, qpm) in EXAMPLES.items():
        path = OUT / name
        piano_opening(work, last, qpm).write("midi", fp=path)
        s = symusic.Score(str(path))
        print(f"wrote {path.name}: {s.note_num()} notes, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
