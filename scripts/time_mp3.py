"""How long MP3 encoding takes at LAME's quality 5 (its default) and 7 (what the app uses), in
stereo and mono: 60 s of piano (the first 36 bars of an 84-bar seed, about what the app's player
holds for 32 new bars), the median of 5 encodes each.

    python scripts/time_mp3.py --seed ../shared/data/piano-midi-de/chopin/chpn_op10_e12.mid
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import lameenc
import numpy as np

from musicgen.render import render_audio
from musicgen.tokenizer import bar_starts, read_midi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True)
    parser.add_argument("--bars", type=int, default=36)
    args = parser.parse_args()
    score = read_midi(args.seed)
    audio = render_audio(score.clip(0, int(bar_starts(score)[args.bars]), clip_end=False))
    for quality, channels in ((5, 2), (7, 2), (7, 1)):
        pcm = (np.clip(audio if channels == 2 else audio.mean(1), -1, 1) * 32767).astype("<i2").tobytes()
        times = []
        for _ in range(5):
            encoder = lameenc.Encoder()
            encoder.set_bit_rate(160)
            encoder.set_in_sample_rate(44100)
            encoder.set_channels(channels)
            encoder.set_quality(quality)
            start = time.perf_counter()
            encoder.encode(pcm)
            encoder.flush()
            times.append(time.perf_counter() - start)
        print(f"quality {quality}, {channels} channel(s): {statistics.median(times):.2f} s "
              f"for {len(audio) / 44100:.0f} s of audio")


if __name__ == "__main__":
    main()
