"""Wall time of `classify_file` on each file given (the median of 3, after one warm-up call), and
for MIDI files the split between rendering and judging the clips, one CPU thread.

    python scripts/time_classify.py assets/examples/*.mid \
        /work/shared/data/piano-midi-de/chopin/chpn_op35_3.mid
    python scripts/time_classify.py --classifier DIR FILE ...   # another critic
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from musicgen.critic.api import classify_file, load_classifier
from musicgen.critic.features import log_mel, prepare_audio


def main(paths: list[str], folder: str | None) -> None:
    from musicgen.render.audio import render_audio
    from musicgen.tokenizer import MIDI_SUFFIXES, read_midi

    torch.set_num_threads(1)
    clf = load_classifier(folder) if folder else load_classifier()
    t = time.perf_counter()
    classify_file(paths[0], clf)
    print(f"first call {time.perf_counter() - t:.2f} s ({clf.features.max_clips} clips, "
          f"{2 * clf.features.key_shifts + 1} keys, {clf.config.get('members', 1)} model(s))")
    for path in paths:
        seconds = []
        for _ in range(3):
            t = time.perf_counter()
            top = classify_file(path, clf)["top"]
            seconds.append(time.perf_counter() - t)
        line = f"{Path(path).name}: {statistics.median(seconds):.2f} s, {top}"
        if Path(path).suffix.lower() in MIDI_SUFFIXES:
            t = time.perf_counter()
            audio = render_audio(read_midi(path), sample_rate=clf.features.sample_rate)
            render = time.perf_counter() - t
            mel = log_mel(prepare_audio(audio, clf.features.sample_rate, clf.features), clf.features)
            t = time.perf_counter()
            clips = len(clf.clip_probabilities(mel))
            line += (f" ({len(audio) / clf.features.sample_rate:.0f} s of audio: rendering {render:.2f} s, "
                     f"judging {clips} clips {time.perf_counter() - t:.2f} s)")
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--classifier", default=None, help="default: the shipped one")
    args = parser.parse_args()
    main(args.files, args.classifier)
