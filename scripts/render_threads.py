"""Which of the app's render stages gain from a second thread, and what the audio costs beside a
Python-bound one: the numbers behind app_render.PHASES (docs/PERFORMANCE.md).

Each stage runs on the first 36 bars of a seed (what the player shows for 32 new bars), twice one
after the other, then twice at once in two threads; then the audio alone and beside music21
engraving in a loop.

    python scripts/render_threads.py --seed ../shared/data/piano-midi-de/chopin/chpn_op10_e12.mid
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from musicgen.app_render import style_line
    from musicgen.critic import load_classifier
    from musicgen.render import midi_to_roll_png, render_audio, write_mp3
    from musicgen.render.score import musicxml_text
    from musicgen.tokenizer import bar_starts, read_midi

    torch.set_num_threads(1)  # as the app runs (musicgen.sample.Generator sets it on CPU)
    load_classifier()
    score = read_midi(args.seed)
    part = score.clip(0, int(bar_starts(score)[36]), clip_end=False)
    audio = render_audio(part)
    out = Path(tempfile.mkdtemp())
    stages = {
        "roll": lambda: midi_to_roll_png(part, out / f"{threading.get_ident()}.png"),
        "audio (FluidSynth)": lambda: render_audio(part),
        "MP3 (LAME)": lambda: write_mp3(audio, out / f"{threading.get_ident()}.mp3"),
        "score (music21)": lambda: musicxml_text(part, "t"),
        "critic": lambda: style_line(part, "t"),
    }
    for name, fn in stages.items():
        fn()  # warm
        serial = timed(lambda: (fn(), fn()))  # noqa: B023 (called at once)
        threads = [threading.Thread(target=fn) for _ in range(2)]
        parallel = timed(lambda: ([t.start() for t in threads], [t.join() for t in threads]))  # noqa: B023
        print(f"{name:<20} twice in a row {serial:5.2f} s, twice at once {parallel:5.2f} s")

    alone = timed(lambda: render_audio(part))
    stop = threading.Event()

    def engrave() -> None:
        while not stop.is_set():
            musicxml_text(part, "t")

    hog = threading.Thread(target=engrave)
    hog.start()
    time.sleep(0.2)
    beside = timed(lambda: render_audio(part))
    stop.set()
    hog.join()
    print(f"audio alone {alone:.2f} s; beside music21 in another thread {beside:.2f} s")


if __name__ == "__main__":
    main()
