"""Wall time of `classify_file` on each file given (after one warm-up call), and for MIDI files
the split between rendering and judging the clips, one CPU thread.

    python scripts/time_classify.py assets/examples/*.mid \
        /work/shared/data/piano-midi-de/chopin/chpn_op35_3.mid
"""

import sys
import time
from pathlib import Path

import torch

from musicgen.classify import classify_file, load_classifier, log_mel, prepare_audio


def main(paths: list[str]) -> None:
    import symusic

    from musicgen.render.audio import render_audio

    torch.set_num_threads(1)
    clf = load_classifier()
    t = time.perf_counter()
    classify_file(paths[0])
    print(f"first call {time.perf_counter() - t:.2f} s ({clf.features.max_clips} clips, "
          f"{2 * clf.features.key_shifts + 1} keys)")
    for path in paths:
        t = time.perf_counter()
        top = classify_file(path)["top"]
        line = f"{Path(path).name}: {time.perf_counter() - t:.2f} s, {top}"
        if path.endswith((".mid", ".midi")):
            t = time.perf_counter()
            audio = render_audio(symusic.Score(path), sample_rate=clf.features.sample_rate)
            render = time.perf_counter() - t
            mel = log_mel(prepare_audio(audio, clf.features.sample_rate, clf.features), clf.features)
            t = time.perf_counter()
            clips = len(clf.clip_probabilities(mel))
            line += (f" ({len(audio) / clf.features.sample_rate:.0f} s of audio: rendering {render:.2f} s, "
                     f"judging {clips} clips {time.perf_counter() - t:.2f} s)")
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
