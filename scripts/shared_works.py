"""Find versions of one work in different corpora by their notes, to check musicgen.data.SHARED_WORKS.

    python scripts/shared_works.py /work/shared/data/piano-midi-de /work/shared/data/mutopia ...

The manifests flag pieces that piano-midi.de also has (`pmd_overlap`) but do not say which file;
this prints the files whose melody another corpus's file shares (over a fifth of its rare 6-grams)
where SHARED_WORKS does not list the pair, the flagged files it does not list, and the listed pairs
whose melodies share little (under a fifth: transcriptions, arrangements; check them by title).
The melody is the top note of each onset (notes within 40 ms are one onset, so transcribed
performances match scores), read as 6-grams of intervals; two versions of one movement share
most of theirs, two different works a few percent.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from musicgen import data
from musicgen import tokenizer as tk

N = 6  # intervals per n-gram: long enough to be rare, short enough to survive ornaments
COMMON = 25  # n-grams found in more files than this (scales, repeated notes) say nothing


def top_line(path: Path) -> np.ndarray:
    """Intervals of the highest note of each onset (onsets within 40 ms merged)."""
    score = tk.read_midi(path)
    notes = sorted((n.time, n.pitch) for t in score.tracks if not t.is_drum for n in t.notes)
    if not notes:
        return np.zeros(0, np.int64)
    secs = tk.tick_to_seconds(score, np.array([t for t, _ in notes]))
    tops, last = [], -1.0
    for s, (_, p) in zip(secs, notes):
        if tops and s - last < 0.04:
            tops[-1] = max(tops[-1], p)
        else:
            tops.append(p)
            last = s
    return np.diff(np.array(tops, np.int64))


def grams(iv: np.ndarray) -> set[tuple]:
    return {tuple(iv[i:i + N]) for i in range(len(iv) - N + 1)}


def main(roots: list[str]) -> int:
    files = {}  # key -> n-gram set
    for root in map(Path, roots):
        prefix = root.name
        for rel in data.taken_files(root):
            if data.style_of(rel) == "pop":
                continue
            files[f"{prefix}/{rel}"] = grams(top_line(root / rel))
    df = Counter(g for s in files.values() for g in s)
    index = defaultdict(list)
    for key, s in files.items():
        for g in s:
            if df[g] <= COMMON:
                index[g].append(key)
    works = [["/".join(v) for v in work] for work in data.shared_works()]  # "corpus/folder/file"
    listed = {frozenset((a, b)) for work in works for a in work for b in work if a != b}
    for key, s in sorted(files.items()):
        if key.startswith("piano-midi-de/"):
            continue
        shared = Counter(other for g in s if df[g] <= COMMON for other in index[g]
                         if other.split("/")[0] != key.split("/")[0])
        if not shared:
            continue
        other, n = shared.most_common(1)[0]
        share = n / max(1, sum(df[g] <= COMMON for g in s))
        if share > 0.2 and frozenset((key, other)) not in listed:
            print(f"not listed  {share:5.2f}  {key}  ~  {other}")
    listed_files = {v for work in works for v in work}
    for root in map(Path, roots):  # files a manifest flags as piano-midi.de's that no entry lists
        for rel, row in (data.read_manifest(root) or {}).items():
            if row.get("pmd_overlap") == "True" and row.get("decision") == data.TAKEN \
                    and f"{root.name}/{rel}" not in listed_files:
                print(f"flagged, not listed: {root.name}/{rel}")
    for work in works:  # listed pairs the notes do not support
        for a in work[1:]:
            if a in files and work[0] in files:
                s, t = files[a], files[work[0]]
                rare = [g for g in s if df[g] <= COMMON]
                share = sum(g in t for g in rare) / max(1, len(rare))
                if share < 0.2:
                    print(f"weak  {share:5.2f}  {a}  ~  {work[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
