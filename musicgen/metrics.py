"""Music statistics of a score: density, pitch classes, key, texture, silence, and copying.

Every function reads all tracks of a symusic Score as one piano. Functions that take `bars`
look only at the first `bars` bars (following the score's meter) and cut notes off where that
window ends, so a generated continuation and a real one of the same length compare fairly.
Definitions follow MusPy (Dong et al., 2020) where it has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import symusic

from musicgen import tokenizer as tk

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor, as MusPy's scale consistency uses
NGRAM_NOTES = 12  # a copied phrase: 12 notes, i.e. 11 successive pitch intervals
TRIVIAL_STEPS = (0, 1, -1, 2, -2, 12, -12)  # intervals of repeated notes, scales and octave moves
TRIVIAL_CLASSES = 3  # a run over this few pitch classes repeats one chord, a trill or a tremolo


def note_array(score: symusic.Score) -> dict[str, np.ndarray]:
    """time, duration, pitch (ticks, ticks, MIDI) of every note, ordered by onset then pitch."""
    parts = [t.notes.numpy() for t in score.tracks if len(t.notes)]
    if not parts:
        return {k: np.zeros(0, np.int64) for k in ("time", "duration", "pitch")}
    cols = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in ("time", "duration", "pitch")}
    order = np.lexsort((cols["pitch"], cols["time"]))
    return {k: v[order] for k, v in cols.items()}


def bar_bounds(score: symusic.Score, bars: int) -> np.ndarray:
    """Ticks of the first bars + 1 bar lines (the last one closes bar `bars`)."""
    longest_bar = 4 * score.tpq * 16  # generous: 16 quarter notes per bar at most
    starts = tk.bar_starts(score, max(score.end(), 0) + (bars + 1) * longest_bar)
    return starts[:bars + 1]


def window(score: symusic.Score, bars: int) -> tuple[dict[str, np.ndarray], int]:
    """The notes that start in the first `bars` bars with their ends cut there, and that end tick."""
    end = int(bar_bounds(score, bars)[-1])
    notes = note_array(score)
    keep = notes["time"] < end
    notes = {k: v[keep] for k, v in notes.items()}
    notes["end"] = np.minimum(notes["time"] + notes["duration"], end)
    return notes, end


def notes_per_second(score: symusic.Score, bars: int) -> float:
    """Note onsets per second over the first `bars` bars (silent bars count too)."""
    notes, end = window(score, bars)
    secs = tk.tick_to_seconds(score, np.array([0, end]))
    return float(len(notes["time"]) / max(secs[1] - secs[0], 1e-9))


def pitch_class_counts(score: symusic.Score, bars: int | None = None) -> np.ndarray:
    """Notes on each pitch class (C first), all or those starting in the first bars, (12,)."""
    pitch = (window(score, bars)[0] if bars else note_array(score))["pitch"]
    return np.bincount(pitch % 12, minlength=12)


def pitch_class_histogram(score: symusic.Score, bars: int | None = None) -> np.ndarray:
    """Share of notes on each pitch class; zeros when there are no notes."""
    counts = pitch_class_counts(score, bars).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal histograms, 1 for disjoint; nan if one is empty."""
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return (kl(p) + kl(q)) / 2


def scale_consistency(score: symusic.Score, bars: int | None = None) -> float:
    """Largest share of notes inside one of the 24 major/minor scales; nan without notes."""
    counts = pitch_class_counts(score, bars)
    if not counts.sum():
        return float("nan")
    scales = [[(root + step) % 12 for step in mode] for root in range(12) for mode in (MAJOR, MINOR)]
    inside = max(counts[scale].sum() for scale in scales)
    return float(inside / counts.sum())  # counts, not shares: a pure scale gives exactly 1.0


def polyphony(score: symusic.Score, bars: int) -> float:
    """Mean number of notes sounding, over the time (ticks) when at least one sounds; nan if silent."""
    notes, _ = window(score, bars)
    if not len(notes["time"]):
        return float("nan")
    times = np.concatenate([notes["time"], notes["end"]])
    steps = np.concatenate([np.ones(len(notes["time"])), -np.ones(len(notes["end"]))])
    order = np.argsort(times, kind="stable")
    times, count = times[order], np.cumsum(steps[order])  # count holds from times[i] to times[i+1]
    span = np.diff(times)
    sounding = count[:-1] > 0
    return float((count[:-1] * span)[sounding].sum() / max(span[sounding].sum(), 1))


def empty_bar_rate(score: symusic.Score, bars: int) -> float:
    """Share of the first `bars` bars in which no note sounds at all (held notes count)."""
    bounds = bar_bounds(score, bars)
    notes, _ = window(score, bars)
    empty = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        empty += not np.any((notes["time"] < hi) & (notes["end"] > lo))
    return empty / bars


def longest_note_seconds(score: symusic.Score, bars: int) -> float:
    """Duration in seconds of the longest note in the window; 0 if there is none."""
    notes, _ = window(score, bars)
    if not len(notes["time"]):
        return 0.0
    secs = tk.tick_to_seconds(score, notes["end"]) - tk.tick_to_seconds(score, notes["time"])
    return float(secs.max())


def intervals(score: symusic.Score, bars: int | None = None) -> np.ndarray:
    """Pitch steps (semitones) between successive notes ordered by onset then pitch."""
    pitch = (window(score, bars)[0] if bars else note_array(score))["pitch"]
    return np.diff(pitch)


class CopyIndex:
    """Every interval sequence of a set of pieces, to ask how much of a new one was copied.

    A suffix array over the pieces' interval sequences (one separator per piece, so no match
    crosses two pieces) gives, for each start in a query, the longest stretch found anywhere.
    """

    def __init__(self, sequences: Sequence[np.ndarray]):
        parts = []
        for i, seq in enumerate(sequences):
            parts += [np.asarray(seq, dtype=np.int64), np.array([1000 + i])]  # intervals are < 128
        self.text = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        self.items = self.text.tolist()
        self.sa = suffix_array(self.text)

    def match_lengths(self, query: np.ndarray) -> np.ndarray:
        """For each start in query, the longest prefix of query[start:] found in the pieces."""
        q = [int(x) for x in query]
        out = np.zeros(len(q), np.int64)
        n = len(self.items)
        for i in range(len(q)):
            rest = q[i:]
            lo, hi = 0, n  # first suffix >= rest
            while lo < hi:
                mid = (lo + hi) // 2
                j = int(self.sa[mid])
                if self.items[j:j + len(rest)] < rest:
                    lo = mid + 1
                else:
                    hi = mid
            out[i] = max((self._common(int(self.sa[k]), rest) for k in (lo - 1, lo) if 0 <= k < n), default=0)
        return out

    def _common(self, j: int, rest: list[int]) -> int:
        m = 0
        while m < len(rest) and j + m < len(self.items) and self.items[j + m] == rest[m]:
            m += 1
        return m

    def copying(self, query: np.ndarray, ngram_notes: int = NGRAM_NOTES,
                lengths: np.ndarray | None = None) -> tuple[float, int]:
        """(share of the query's n-note phrases found in the pieces, longest copied run in notes);
        `lengths`: match_lengths(query) when already computed."""
        query = np.asarray(query)
        if not len(query):
            return float("nan"), 0
        lengths = self.match_lengths(query) if lengths is None else lengths
        k = ngram_notes - 1  # intervals in an n-note phrase
        starts = len(query) - k + 1
        share = float(np.mean(lengths[:starts] >= k)) if starts > 0 else float("nan")
        return share, int(lengths.max()) + 1

    def longest_nontrivial(self, query: np.ndarray, lengths: np.ndarray | None = None) -> int:
        """Notes in the longest copied run of the query that is not `trivial`; 0 if every one is.

        A run found in the pieces counts whole once any part of it is not trivial: since every
        stretch of a trivial run is trivial, the longest match from each start decides.
        """
        query = np.asarray(query)
        lengths = self.match_lengths(query) if lengths is None else lengths
        runs = [int(n) + 1 for i, n in enumerate(lengths) if n and not trivial(query[i:i + n])]
        return max(runs, default=0)


def trivial(steps: np.ndarray) -> bool:
    """A pattern any two pieces may share, from its pitch intervals: either every interval is in
    {0, +-1, +-2, +-12} semitones with the +-1/+-2 steps all one way (repeated notes, octave moves,
    a scale running one way, octave leaps inside it allowed), or the notes use at most
    TRIVIAL_CLASSES pitch classes (repeated or broken chords of one triad, trills, tremolos).
    Every stretch of a trivial run is trivial. A melody turning back over four or more pitch
    classes is not (a C-D-E-D-C-F figure, an arpeggio of a seventh chord)."""
    s = np.asarray(steps, dtype=np.int64)
    if len(np.unique(np.concatenate([[0], np.cumsum(s)]) % 12)) <= TRIVIAL_CLASSES:
        return True
    if not np.isin(s, TRIVIAL_STEPS).all():
        return False
    small = s[(s != 0) & (np.abs(s) <= 2)]
    return bool((small > 0).all() or (small < 0).all())


def suffix_array(text: np.ndarray) -> np.ndarray:
    """Start of every suffix of text in sorted order (prefix doubling, numpy sorts)."""
    n = len(text)
    if n == 0:
        return np.zeros(0, np.int64)
    rank = np.unique(text, return_inverse=True)[1].astype(np.int64).ravel()
    k = 1
    while True:
        second = np.zeros(n, np.int64)
        second[:n - k] = rank[k:] + 1  # 0: the suffix ends before the second half
        key = rank * (n + 1) + second
        sa = np.argsort(key, kind="stable")
        new = np.empty(n, np.int64)
        new[sa] = np.concatenate([[0], np.cumsum(key[sa][1:] != key[sa][:-1])])
        rank = new
        if rank.max() == n - 1 or k >= n:
            return sa
        k *= 2


def continuation_stats(score: symusic.Score, bars: int, seed: symusic.Score,
                       index: CopyIndex | None = None) -> dict[str, float]:
    """Every statistic of one continuation; the pitch-class distance is taken to its seed."""
    stats = {
        "notes_per_second": notes_per_second(score, bars),
        "pc_js_to_seed": js_divergence(pitch_class_histogram(score, bars), pitch_class_histogram(seed)),
        "scale_consistency": scale_consistency(score, bars),
        "polyphony": polyphony(score, bars),
        "empty_bar_rate": empty_bar_rate(score, bars),
        "longest_note_s": longest_note_seconds(score, bars),
    }
    if index is not None:
        steps = intervals(score, bars)
        lengths = index.match_lengths(steps)
        share, run = index.copying(steps, lengths=lengths)
        stats["train_ngram_share"], stats["longest_copied_notes"] = share, float(run)
        stats["longest_copied_nontrivial"] = float(index.longest_nontrivial(steps, lengths))
    return stats

