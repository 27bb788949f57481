"""How well infill joins the music after the gap, and how often `--end` really ends: measured on
the checkpoint's held-out pieces (`musicgen shape-report`).

Infill: in each piece, bars FILL (9-12) are rewritten and the join into the real bars after them
(13-16) is measured three ways (pitch-class distance, register change, density change) for:
the real bars 9-12 (the target), infill with 1, 4, ... candidates (1: a plain continuation of
bars 1-8 that ignores the right side) and 4 bars copied from elsewhere in the same piece. A
method is as good as its join measures are close to the real bars' join.

Endings: the last bar of continuations with and without `--end`, and of the real pieces, either
holds the tonic chord of the key in force (ending.holds_tonic_chord) or not.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import symusic

from musicgen import coherence
from musicgen import tokenizer as tk
from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from musicgen.data import data_root, load_corpus, split_pieces
from musicgen.ending import holds_tonic_chord, last_sounding_bar
from musicgen.errors import MusicgenError
from musicgen.infill import infill
from musicgen.sample import Generator, SampleConfig, clip_from

FILL = (9, 13)  # bars 9-12 (1-based, stop exclusive)
AFTER = 4  # the real bars after the gap the join is measured into
JOINS = {"pc_js": "pitch-class JS, filled bars vs next 4 (bits)",
         "register": "register change into the next 4 (semitones)",
         "density": "density change into the next 4 (log2 notes/bar)"}


def bars_of(score: symusic.Score, first: int, stop: int) -> symusic.Score:
    """Bars first..stop-1 (1-based) of a score, moved to start at 0, notes cut at its end."""
    starts = tk.bar_starts(score, score.end() + 1)
    lo = int(starts[first - 1])
    hi = int(starts[stop - 1]) if stop - 1 < len(starts) else score.end() + 1
    return clip_from(score, lo).clip(0, hi - lo, clip_end=True)


def join(filled: symusic.Score, after: symusic.Score) -> dict[str, float]:
    """How the music moves from the filled bars into the bars after them."""
    n = FILL[1] - FILL[0]
    density = coherence.density_ratio(filled, after, AFTER, n)
    return {"pc_js": coherence.pitch_class_distance(filled, after, AFTER, n),
            "register": coherence.register_shift(filled, after, AFTER, n),
            "density": float(np.log2(density)) if density == density and density > 0 else float("nan")}


def copied_bars(score: symusic.Score, rng: np.random.Generator) -> symusic.Score | None:
    """FILL's length of bars from elsewhere in the piece (not overlapping bars 5-16), or None."""
    n, starts = FILL[1] - FILL[0], tk.bar_starts(score, score.end() + 1)
    options = [s for s in range(1, len(starts) - n + 1)
               if (s + n <= FILL[0] - 4 or s >= FILL[1] + AFTER) and bars_of(score, s, s + n).note_num()]
    if not options:
        return None
    first = int(rng.choice(options))
    return bars_of(score, first, first + n)


def infill_rows(gen: Generator, ref: symusic.Score, cfg: SampleConfig, candidates: list[int],
                rng: np.random.Generator) -> dict[str, list[dict]]:
    """{method: join measures per fill} for one piece."""
    after = bars_of(ref, FILL[1], FILL[1] + AFTER)
    rows = {"real": [join(bars_of(ref, *FILL), after)]}
    copy = copied_bars(ref, rng)
    rows["copy"] = [join(copy, after)] if copy is not None else []
    for k in candidates:
        result = infill(gen, ref, *FILL, replace(cfg, candidates=k))
        rows[f"infill_{k}"] = [join(bars_of(s, *FILL), after) for s in result.scores]
    return rows


def closeness(rows: list[dict[str, list[dict]]], method: str) -> dict[str, dict]:
    """Per join measure: |method's join - the real join| over every fill, as mean, standard error,
    median and quartiles, and how many fills it is."""
    out = {}
    for key in JOINS:
        gaps = np.array([abs(r[key] - piece["real"][0][key]) for piece in rows for r in piece[method]
                         if r[key] == r[key] and piece["real"][0][key] == piece["real"][0][key]])
        q1, med, q3 = np.percentile(gaps, [25, 50, 75]) if len(gaps) else (np.nan,) * 3
        out[key] = {"mean": float(gaps.mean()) if len(gaps) else float("nan"),
                    "se": float(gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else float("nan"),
                    "median": float(med), "q1": float(q1), "q3": float(q3), "n": int(len(gaps))}
    return out


def paired(rows: list[dict[str, list[dict]]], method: str, baseline: str = "infill_1") -> dict[str, dict]:
    """Per join measure, piece by piece: the baseline's mean |join - real join| minus the method's
    (positive: the method joins closer), as mean and standard error over pieces, and the share of
    pieces where the method is closer."""
    out = {}
    for key in JOINS:
        d = np.array([_gap(p, baseline, key) - _gap(p, method, key) for p in rows])
        d = d[~np.isnan(d)]
        out[key] = {"mean": float(d.mean()) if len(d) else float("nan"),
                    "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
                    "share_closer": float(np.mean(d > 0)) if len(d) else float("nan"), "pieces": int(len(d))}
    return out


def _gap(piece: dict, method: str, key: str) -> float:
    """A piece's mean |join - real join| of one method on one measure (nan if undefined)."""
    real = piece["real"][0][key]
    v = [abs(r[key] - real) for r in piece[method] if r[key] == r[key] and real == real]
    return float(np.mean(v)) if v else float("nan")


def ending_rows(gen: Generator, ref: symusic.Score, cfg: SampleConfig, seed_bars: int,
                bars: int) -> dict[str, bool | None]:
    """Whether the last bar holds the tonic chord: a plain continuation, one with --end, the piece."""
    cut = int(tk.bar_starts(ref, ref.end() + 1)[seed_bars])
    seed = ref.clip(0, cut, clip_end=False)
    out = {"real": holds_tonic_chord(ref)}
    for name, end in (("plain", False), ("end", True)):
        result = gen.generate(seed, replace(cfg, bars=bars, end=end))
        last = len(tk.bar_starts(result.scores[0], result.split_tick + 1)) - 1 + bars - 1
        out[name] = bool(holds_tonic_chord(result.scores[0], last))
    out["real_last_bar"] = last_sounding_bar(ref)
    return out


def report(checkpoint: str | Path = DEFAULT_CHECKPOINT, data: str | list = "", pieces: int = 0,
           fills: int = 2, candidates: tuple[int, ...] = (1, 4, 16), end_pieces: int = 30,
           end_bars: int = 8, seed: int = 0, end_candidates: int = 16, corpus_name: str = "") -> dict:
    """The whole report as a JSON-ready dict."""
    checkpoint = Path(checkpoint)
    _, tokenizer, config = load_checkpoint(checkpoint, "cpu")
    corpus, _ = load_corpus(data_root(config, data), tokenizer)
    test = split_pieces(corpus.pieces, config, "test")
    if corpus_name:  # as evaluate --corpus: piano-midi-de's are the first model's test pieces
        test = [p for p in test if p.corpus == corpus_name]
    test = test[:pieces] if pieces else test
    gen = Generator(checkpoint, device="cpu")
    rng = np.random.default_rng(seed)
    infills, endings, skipped = [], [], []
    t0 = time.perf_counter()
    for i, piece in enumerate(test):
        ref = tk.decode(tokenizer, piece.ids)  # as the model sees it: real and generated share a grid
        if len(tk.bar_starts(ref, ref.end() + 1)) < FILL[1] + AFTER + FILL[1] - FILL[0]:
            skipped.append(piece.path)
            continue
        style = piece.style if piece.style in gen.styles else tk.ANY_STYLE
        cfg = SampleConfig(style=style, seed=seed + i, variations=fills)
        try:
            infills.append({"piece": piece.path, **infill_rows(gen, ref, cfg, list(candidates), rng)})
        except MusicgenError as e:  # a meter change inside the gap: the fill would be re-barred
            skipped.append(f"{piece.path}: {e}")
        if len(endings) < end_pieces:
            endings.append({"piece": piece.path,
                            **ending_rows(gen, ref, replace(cfg, variations=1, candidates=end_candidates),
                                         FILL[0] - 1, end_bars)})
    methods = ["copy"] + [f"infill_{k}" for k in candidates]
    share = {name: float(np.mean([bool(e[name]) for e in endings])) if endings else float("nan")
             for name in ("plain", "end", "real")}
    return {"checkpoint": str(checkpoint), "pieces": len(infills), "skipped": skipped,
            "fill_bars": f"{FILL[0]}-{FILL[1] - 1}", "fills_per_piece": fills, "candidates": list(candidates),
            "closeness_to_real_join": {m: closeness(infills, m) for m in methods},
            "gain_over_plain": {m: paired(infills, m) for m in methods if m != "infill_1"},
            "real_join": {k: coherence.band([p["real"][0][k] for p in infills]) for k in JOINS},
            "endings": {"n": len(endings), "bars": end_bars, "candidates": end_candidates,
                        "share_tonic_last_bar": share},
            "per_piece": {"infill": infills, "endings": endings},
            "seconds": round(time.perf_counter() - t0, 1)}


def format_report(rep: dict) -> str:
    """The report as plain-text tables."""
    lines = [f"infill of bars {rep['fill_bars']} on {rep['pieces']} held-out pieces, "
             f"{rep['fills_per_piece']} fills each: |join - real join| (mean ± s.e.; median [q1, q3])"]
    for key, label in JOINS.items():
        lines.append(f"  {label}")
        for method, by in rep["closeness_to_real_join"].items():
            c = by[key]
            lines.append(f"    {method:<12}{c['mean']:>8.3f} ± {c['se']:.3f}   {c['median']:.3f} "
                         f"[{c['q1']:.3f}, {c['q3']:.3f}]  n={c['n']}")
    lines.append("piece by piece, plain continuation's gap minus the method's (mean ± s.e.; pieces closer)")
    for method, by in rep["gain_over_plain"].items():
        cells = [f"{key} {c['mean']:+.3f} ± {c['se']:.3f} ({c['share_closer']:.0%})" for key, c in by.items()]
        lines.append(f"    {method:<12}" + "  ".join(cells))
    e = rep["endings"]
    lines.append(f"endings: last bar holds the tonic chord, {e['n']} pieces, {e['bars']} new bars after 8, "
                 f"--end trying {e['candidates']} last bars")
    lines += [f"    {name:<12}{share:>8.0%}" for name, share in e["share_tonic_last_bar"].items()]
    return "\n".join(lines)


def main(args) -> int:
    rep = report(args.checkpoint, args.data, args.pieces, args.fills, tuple(args.candidates),
                 args.end_pieces, args.end_bars, args.seed, args.end_candidates, args.corpus)
    print(format_report(rep))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1, default=float) + "\n")
    return 0
