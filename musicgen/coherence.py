"""Coherence of a continuation with the seed it follows: texture, range, register, key, left hand,
loops; how far each continuation falls outside the real next bars' bands (issue 17, item 6).

Every measure is a pure function of symusic Scores, reading all tracks as one piano. `cont` is the
continuation alone, starting at tick 0 (`sample.continuation_of`), read over its first `bars`
bars with notes cut where that window ends (`metrics.window`). `seed` is the opening, read over
its first `seed_bars` bars; by default every bar up to the one holding its last onset. Bars
follow the score's meter (`tokenizer.bar_starts`). "A note in a bar" means a note that starts
in it, except where a measure says "sounds" (then a note held over the bar line counts too).
The copied-run measure is `metrics.CopyIndex.longest_nontrivial` (it needs the training pieces).
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from musicgen import metrics
from musicgen import tokenizer as tk

MIDDLE_C = 60
# Krumhansl & Kessler (1982) key profiles, tonic first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
LOOP_LOOKBACK = 4  # a loop: a bar equal to one 1..4 bars earlier
SINGLE_LINE_ALARM = 8  # headline: continuations with this many single-line bars in a row
OUT_OF_BAND_ALARM = 3  # headline: continuations with this many measures outside the real band

# the numeric per-continuation measures: key: (label, digits); all count towards out_of_band
MEASURES = {
    "single_line_run": ("longest run of single-line bars", 1),
    "bar_range_change": ("bar range - seed's (semitones)", 1),
    "register_shift": ("mean pitch - seed's (semitones)", 1),
    "pc_js_to_seed": ("pitch-class JS to seed (bits)", 3),
    "density_ratio": ("notes per bar / seed's", 2),
    "left_hand_share": ("bars with a note below middle C", 2),
    "loop_share": ("bars equal to one 1-4 bars earlier", 2),
    "longest_copied_nontrivial": ("longest non-trivial run from train", 1),
}
HEADLINE = {  # key: (label, format)
    "share_out_of_band": (f"continuations with >= {OUT_OF_BAND_ALARM} measures out of the real band",
                          "{:.0%}"),
    "share_single_line": (f"continuations with >= {SINGLE_LINE_ALARM} single-line bars in a row", "{:.0%}"),
    "share_key_unrelated": ("continuations in a key unrelated to the seed's", "{:.0%}"),
    "median_bar_range_change": ("median bar-range change vs seed (semitones)", "{:+.1f}"),
    "mean_pc_js_to_seed": ("mean pitch-class JS to seed (bits)", "{:.3f}"),
    "max_longest_copied_nontrivial": ("longest non-trivial copied run, max (notes)", "{:.0f}"),
}


def _bars(score: Score, bars: int | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(notes of the window with cut ends, its bars + 1 bar lines); bars=None: up to the last onset."""
    if bars is None:
        last = metrics.note_array(score)["time"]
        bars = max(len(tk.bar_starts(score, int(last.max()) + 1)) if len(last) else 1, 1)
    notes, _ = metrics.window(score, bars)
    return notes, metrics.bar_bounds(score, bars)


def _in_bar(notes: dict[str, np.ndarray], lo: int, hi: int, sounding: bool = False) -> np.ndarray:
    """Mask of the notes that start in [lo, hi), or that sound there at all."""
    if sounding:
        return (notes["time"] < hi) & (notes["end"] > lo)
    return (notes["time"] >= lo) & (notes["time"] < hi)


def _spans(bounds: np.ndarray):
    return zip(bounds[:-1].tolist(), bounds[1:].tolist())


def single_line_run(cont: Score, bars: int) -> int:
    """Longest run of consecutive bars (count) in which at least one note sounds and never two
    sound at the same time (notes held over the bar line count; touching notes, one ending where
    the next starts, are not together). A bar in which nothing sounds ends the run: silence is
    not a line."""
    notes, bounds = _bars(cont, bars)
    best = run = 0
    for lo, hi in _spans(bounds):
        m = _in_bar(notes, lo, hi, sounding=True)
        start, end = np.maximum(notes["time"][m], lo), np.minimum(notes["end"][m], hi)
        order = np.argsort(start, kind="stable")
        start, end = start[order], end[order]
        together = len(start) > 1 and bool(np.any(start[1:] < np.maximum.accumulate(end)[:-1]))
        run = run + 1 if m.any() and not together else 0
        best = max(best, run)
    return best


def bar_ranges(score: Score, bars: int | None = None) -> np.ndarray:
    """Highest minus lowest pitch (semitones) of the notes in each bar that has any (0 for one note)."""
    notes, bounds = _bars(score, bars)
    out = []
    for lo, hi in _spans(bounds):
        p = notes["pitch"][_in_bar(notes, lo, hi)]
        if len(p):
            out.append(int(p.max() - p.min()))
    return np.array(out, dtype=np.int64)


def bar_range_change(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> float:
    """Median bar range of the continuation minus that of the seed (semitones; bars without notes
    left out); nan if either has no notes."""
    a, b = bar_ranges(cont, bars), bar_ranges(seed, seed_bars)
    return float(np.median(a) - np.median(b)) if len(a) and len(b) else float("nan")


def register_shift(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> float:
    """Mean MIDI pitch of the continuation's notes minus the seed's (semitones, every note once);
    nan if either has no notes."""
    a, b = _bars(cont, bars)[0]["pitch"], _bars(seed, seed_bars)[0]["pitch"]
    return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")


def pitch_class_distance(seed: Score, cont: Score, bars: int,
                         seed_bars: int | None = None) -> float:
    """Jensen-Shannon divergence (bits, 0..1) between the note-count pitch-class histograms of the
    continuation and of the seed (every note counts once, whatever its length, as in
    metrics.pitch_class_histogram); nan if either has no notes."""
    return metrics.js_divergence(metrics.pitch_class_histogram(cont, bars),
                                 metrics.pitch_class_histogram(seed, seed_bars or None))


def density_ratio(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> float:
    """Notes per bar of the continuation / notes per bar of the seed (empty bars count in both);
    nan if the seed has no notes."""
    (a, ab), (b, bb) = _bars(cont, bars), _bars(seed, seed_bars)
    if not len(b["pitch"]):
        return float("nan")
    return float((len(a["pitch"]) / (len(ab) - 1)) / (len(b["pitch"]) / (len(bb) - 1)))


def estimate_key(score: Score, bars: int | None = None) -> tuple[int, str] | None:
    """Krumhansl-Schmuckler key (tonic pitch class, "major" | "minor"): the Krumhansl-Kessler profile
    with the highest Pearson correlation to the score's pitch-class durations (quarter notes,
    ends cut at the window); ties go to the lower tonic, major first. None without a profile
    (no notes, or all twelve classes equally long)."""
    notes, _ = _bars(score, bars)
    weights = np.bincount(notes["pitch"] % 12, weights=(notes["end"] - notes["time"]) / score.tpq,
                          minlength=12)
    if not len(notes["pitch"]) or np.ptp(weights) == 0:
        return None
    best, key = -np.inf, None
    for tonic in range(12):
        for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
            r = float(np.corrcoef(weights, np.roll(profile, tonic))[0, 1])
            if r > best + 1e-12:
                best, key = r, (tonic, mode)
    return key


def key_name(key: tuple[int, str] | None) -> str:
    """"C major", "F# minor"; "-" for None."""
    return f"{NAMES[key[0]]} {key[1]}" if key else "-"


def fifths(key: tuple[int, str]) -> int:
    """Position of the key signature on the circle of fifths (C major / A minor 0, G 1, F 11)."""
    tonic, mode = key
    return (tonic + (3 if mode == "minor" else 0)) * 7 % 12


def relation(a: tuple[int, str] | None, b: tuple[int, str] | None) -> str:
    """"same" (tonic and mode), "close" (a key signature at most one sharp or flat apart: relative
    major/minor, dominant and subdominant keys and their relatives; or the parallel major/minor),
    else "unrelated"; "unknown" if either key is None. For C major the close keys are A minor,
    G major, F major, E minor, D minor and C minor."""
    if a is None or b is None:
        return "unknown"
    if a == b:
        return "same"
    d = (fifths(a) - fifths(b)) % 12
    return "close" if min(d, 12 - d) <= 1 or a[0] == b[0] else "unrelated"


def key_relation(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> str:
    """`relation` of the Krumhansl-Schmuckler keys of the seed and of the continuation."""
    return relation(estimate_key(seed, seed_bars), estimate_key(cont, bars))


def left_hand_share(cont: Score, bars: int) -> float:
    """Share of the continuation's bars in which a note below middle C (MIDI 60) sounds."""
    notes, bounds = _bars(cont, bars)
    low = {k: v[notes["pitch"] < MIDDLE_C] for k, v in notes.items()}
    return float(np.mean([_in_bar(low, lo, hi, sounding=True).any() for lo, hi in _spans(bounds)]))


def bar_contents(score: Score, bars: int | None = None) -> list[tuple]:
    """Per bar, its notes as a sorted tuple of (onset - bar start in ticks, pitch, duration in ticks);
    () for a bar with no notes."""
    notes, bounds = _bars(score, bars)
    out = []
    for lo, hi in _spans(bounds):
        m = _in_bar(notes, lo, hi)
        out.append(tuple(sorted(zip((notes["time"][m] - lo).tolist(), notes["pitch"][m].tolist(),
                                    notes["duration"][m].tolist()))))
    return out


def loop_share(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> float:
    """Share of the continuation's bars with notes that equal (`bar_contents`: same onsets in the bar,
    pitches and full durations) one of the LOOP_LOOKBACK bars before it, the seed's last bars
    included; bars without notes are left out (nan if all are)."""
    past, own = bar_contents(seed, seed_bars), bar_contents(cont, bars)
    seq, start = past + own, len(past)
    loops = [any(seq[i] == seq[j] for j in range(max(i - LOOP_LOOKBACK, 0), i))
             for i in range(start, len(seq)) if seq[i]]
    return float(np.mean(loops)) if loops else float("nan")


def measures(seed: Score, cont: Score, bars: int, seed_bars: int | None = None) -> dict:
    """Every measure of one continuation but the copied run (metrics.continuation_stats has it),
    plus the two keys and their relation."""
    keys = estimate_key(seed, seed_bars), estimate_key(cont, bars)
    return {"single_line_run": float(single_line_run(cont, bars)),
            "bar_range_change": bar_range_change(seed, cont, bars, seed_bars),
            "register_shift": register_shift(seed, cont, bars, seed_bars),
            "pc_js_to_seed": pitch_class_distance(seed, cont, bars, seed_bars),
            "density_ratio": density_ratio(seed, cont, bars, seed_bars),
            "left_hand_share": left_hand_share(cont, bars),
            "loop_share": loop_share(seed, cont, bars, seed_bars),
            "seed_key": key_name(keys[0]), "key": key_name(keys[1]), "key_relation": relation(*keys)}


def band(values: list) -> dict[str, float]:
    """Mean and 5th/95th percentiles (numpy's linear interpolation), ignoring nan or missing values."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return {"mean": float("nan"), "p5": float("nan"), "p95": float("nan"), "n": 0}
    p5, p95 = np.percentile(v, [5, 95])
    return {"mean": float(v.mean()), "p5": float(p5), "p95": float(p95), "n": int(len(v))}


def outside(row: dict, bands: dict[str, dict]) -> list[str]:
    """The MEASURES of one continuation strictly below p5 or above p95 of its band (nan: inside)."""
    out = []
    for key in MEASURES:
        x, b = row.get(key), bands.get(key)
        if x is None or b is None or not b["n"] or x != x:
            continue
        if x < b["p5"] or x > b["p95"]:
            out.append(key)
    return out


def headline(rows: list[dict]) -> dict:
    """The shares and summaries the model issue's targets are stated in, over continuations that
    carry "out_of_band" (from `outside`); nan where no continuation defines the value."""
    def finite(key):
        v = np.array([r[key] for r in rows if r.get(key) is not None], dtype=np.float64)
        return v[~np.isnan(v)]

    def share(flags):
        return float(np.mean(flags)) if len(rows) else float("nan")

    nan = float("nan")
    ranges, js = finite("bar_range_change"), finite("pc_js_to_seed")
    copied = finite("longest_copied_nontrivial")
    return {"n": len(rows),
            "share_out_of_band": share([r["out_of_band"] >= OUT_OF_BAND_ALARM for r in rows]),
            "share_single_line": share([r["single_line_run"] >= SINGLE_LINE_ALARM for r in rows]),
            "share_key_unrelated": share([r["key_relation"] == "unrelated" for r in rows]),
            "median_bar_range_change": float(np.median(ranges)) if len(ranges) else nan,
            "mean_pc_js_to_seed": float(js.mean()) if len(js) else nan,
            "max_longest_copied_nontrivial": float(copied.max()) if len(copied) else nan}


def section(generated: list[dict], real: list[dict]) -> dict:
    """The report's coherence section. Second pass: bands of every measure over the real rows (one
    per piece); each row, generated or real, gets "outside" and "out_of_band" set in place."""
    bands = {k: band([r.get(k) for r in real]) for k in MEASURES}
    for row in generated + real:
        row["outside"] = outside(row, bands)
        row["out_of_band"] = len(row["outside"])
    sides = {"generated": generated, "held_out": real}
    relations = ("same", "close", "unrelated", "unknown")
    return {"measures": {k: {"generated": band([r.get(k) for r in generated]), "held_out": bands[k]}
                         for k in MEASURES},
            "key_relation": {side: {k: float(np.mean([r["key_relation"] == k for r in rows])) if rows
                                    else float("nan") for k in relations} for side, rows in sides.items()},
            "headline": {side: headline(rows) for side, rows in sides.items()}}


def format_section(coh: dict, per_piece: int) -> list[str]:
    """The coherence section as plain-text table lines."""
    head = coh["headline"]
    lines = [f"coherence: {head['generated']['n']} continuations ({per_piece} per piece) beside the real "
             f"next bars of {head['held_out']['n']} pieces; bands over the real next bars decide 'out'",
             *band_table("measure", MEASURES, coh["measures"])]
    rel = coh["key_relation"]
    lines.append(f"{'key relation: same / close / unrelated':<40}"
                 + "".join(f"{' / '.join(f'{rel[s][k]:.0%}' for k in ('same', 'close', 'unrelated')):>{w}}"
                           for s, w in (("generated", 30), ("held_out", 34))))
    lines += ["", f"{'headline':<66}{'generated':>12}{'real':>8}"]
    for key, (label, fmt) in HEADLINE.items():
        vals = [head[s][key] for s in ("generated", "held_out")]
        cells = ["-" if v != v else fmt.format(v) for v in vals]
        lines.append(f"{label:<66}{cells[0]:>12}{cells[1]:>8}")
    return lines


def band_table(title: str, names: dict[str, tuple[str, int]], bands: dict[str, dict]) -> list[str]:
    """A header and one "mean [p5, p95]" row per measure, generated beside the real next bars."""
    lines = [f"{title:<40}{'generated: mean [p5, p95]':>30}{'real next bars: mean [p5, p95]':>34}"]
    for key, (label, digits) in names.items():
        cells = [cell(bands[key][side], digits) for side in ("generated", "held_out")]
        lines.append(f"{label:<40}{cells[0]:>30}{cells[1]:>34}")
    return lines


def cell(b: dict, digits: int) -> str:
    """"mean [p5, p95]" of a band; "-" if it is empty."""
    if not b["n"]:
        return "-"
    return f"{b['mean']:.{digits}f} [{b['p5']:.{digits}f}, {b['p95']:.{digits}f}]"
