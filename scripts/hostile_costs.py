"""What the hostile files of issue 18 cost the app now: time and peak memory of each, measured
one at a time in a fresh process (`python scripts/hostile_costs.py`; docs/PERFORMANCE.md).

The files are built here: one note after 4.6 hours of rest, one note held for 3 hours, and a
dense seed just under the 4 MB upload cap continued by the worst request the form allows
(64 bars x 4 variations). Each runs the app's own path: generate, then app_render's render (roll,
MP3 and score of what the player shows, then the critic's verdict, per variation), or
classify_file for Analyze.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("rest", "long-note", "worst")


def build(case: str, folder: Path) -> Path:
    """The MIDI file of one case."""
    import numpy as np
    import symusic

    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    track = symusic.Track(name="piano", program=0)
    hour = 3600 * 2 * 480  # ticks in an hour at 120 quarter notes a minute
    if case == "rest":
        track.notes.append(symusic.Note(46 * hour // 10, 480, 60, 80))
    elif case == "long-note":
        track.notes.append(symusic.Note(0, 3 * hour, 60, 80))
    else:
        rng = np.random.default_rng(0)
        for i in range(152_500):  # four-note chords on every 16th: 3.97 MB
            for p in rng.choice(np.arange(36, 96), 4, replace=False):
                track.notes.append(symusic.Note(i * 120, 120, int(p), int(rng.integers(40, 100))))
    score.tracks.append(track)
    path = folder / f"{case}.mid"
    score.dump_midi(str(path))
    return path


def measure(case: str) -> None:
    """Run one case in this process and print its line."""
    from musicgen.app_render import render, write_variations
    from musicgen.critic import classify_file, load_classifier
    from musicgen.sample import SampleConfig, load_generator

    gen, clf = load_generator(), load_classifier()
    folder = Path(tempfile.mkdtemp())
    path = build(case, folder)
    classify_file(ROOT / "assets" / "examples" / "bach-chorale-bwv66.mid", clf)  # warm every import
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if case == "long-note":
        what = classify_file(path, clf)["top"]
    else:
        worst = case == "worst"
        cfg = SampleConfig(bars=64 if worst else 8, variations=4 if worst else 2, seed=1)
        result = gen.generate(path, cfg)
        made = write_variations(result.scores, result.split_tick, folder, case, case)
        made = [v for v in made if v.score is not None]
        for _ in render([v.view() for v in made], None, made):
            pass
        what = "; ".join(result.notes) or "no notes"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    print(f"{case:<10} {path.stat().st_size / 1e6:5.2f} MB file  {time.perf_counter() - start:6.1f} s  "
          f"+{peak:5.0f} MB peak  ({what})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=CASES, default=None, help="one case (default: each, in turn)")
    args = parser.parse_args()
    if args.case:
        measure(args.case)
        return 0
    for case in CASES:  # a fresh process each, so one case's peak is not another's
        subprocess.run([sys.executable, __file__, "--case", case], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
