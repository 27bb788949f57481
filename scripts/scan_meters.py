"""Every time signature the corpora use, per corpus: what tokenizer.TIME_SIGNATURE_RANGE must cover.

    python scripts/scan_meters.py /work/shared/data/*/

Prints, per corpus folder, each meter with the number of files that use it, then the meters
missing from the tokenizer's range (symusic reads the meta events; a second for 2,000 files).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import symusic

from musicgen import data
from musicgen import tokenizer as tk


def main(roots: list[str]) -> int:
    covered = {(n, d) for d, ns in tk.TIME_SIGNATURE_RANGE.items() for n in ns}
    missing = set()
    for root in map(Path, roots):
        files = Counter()
        for f in data.find_midi_files(root):
            meters = {(ts.numerator, ts.denominator) for ts in symusic.Score(str(f)).time_signatures}
            files.update(meters)
            missing |= meters - covered
        shown = ", ".join(f"{n}/{d} ({c})" for (n, d), c in files.most_common())
        print(f"{root.name}: {shown}")
    gaps = sorted(missing, key=lambda m: (m[1], m[0]))
    print("not covered:", ", ".join(f"{n}/{d}" for n, d in gaps) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
