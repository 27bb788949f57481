"""Infill: rewrite bars a..b-1 of a piece so that they follow from what comes before and lead
into bar b and after.

The GRU reads left to right, so the right side enters by Bayes' rule: p(middle | left, right) is
proportional to p(middle | left) * p(right | left, middle). Each variation samples `candidates`
middles after the left context (the sampler as `generate` runs it, the meter of bar a held),
then the model reads the next RIGHT_BARS bars of the piece after each middle, and the middle
under which they are likeliest is kept. With one candidate this is a plain continuation that
ignores the right side: the baseline it is measured against (docs/RESULTS.md). Outside the
filled bars the piece is left exactly as it was (its tracks, tempo, pedalling, key).
"""

from __future__ import annotations

import time

import numpy as np
import symusic
import torch

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError
from musicgen.keys import seed_key
from musicgen.sample import Generation, Generator, SampleConfig, check_config, clip_from

RIGHT_BARS = 4  # bars after the gap that score a candidate: enough to hear where the music goes
MAX_FILL_BARS = 32


def parse_bars(text: str) -> tuple[int, int]:
    """"9-12" -> (9, 13), "9" -> (9, 10): the first bar (1-based, as a score numbers them) and the
    bar after the last; a sentence for anything else."""
    parts = str(text).replace("–", "-").replace(" ", "").split("-")
    try:
        first, last = (int(parts[0]), int(parts[-1])) if 1 <= len(parts) <= 2 else (0, 0)
    except ValueError:
        first = last = 0
    if first < 1 or last < first:
        raise MusicgenError(f"bars must be a range like 9-12 (first bar, last bar, from 1), not {text!r}")
    if last - first + 1 > MAX_FILL_BARS:
        raise MusicgenError(f"at most {MAX_FILL_BARS} bars can be rewritten at once, not {last - first + 1}")
    return first, last + 1


def meter_at(score: symusic.Score, tick: int) -> tuple[int, int]:
    """(numerator, denominator) in force at a tick; 4/4 before any."""
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures if ts.time <= tick)
    return (sigs[-1][1], sigs[-1][2]) if sigs else (4, 4)


@torch.no_grad()
def infill(gen: Generator, piece, first: int, stop: int, cfg: SampleConfig | None = None) -> Generation:
    """The piece with bars first..stop-1 (1-based) rewritten, cfg.variations times: scores are whole
    pieces, split_tick and fill_end_tick bound the new bars. cfg.bars is set by the range."""
    cfg = cfg or SampleConfig()
    check_config(cfg, gen.styles)
    cfg.check_rows("infill")
    t0 = time.perf_counter()
    original = tk.read_midi(piece)
    prepared = tk.prepare(original)
    if prepared.note_num() == 0:
        raise MusicgenError("the piece has no playable piano notes to rewrite around")
    starts = tk.bar_starts(prepared)  # bars that hold some of the piece, as the score numbers them
    n_bars = len(starts)
    if not 1 <= first < stop or stop - 1 > n_bars:
        raise MusicgenError(f"the piece has {n_bars} bars: choose bars between 1 and {n_bars}, "
                            f"not {first}-{stop - 1}")
    if stop - first > MAX_FILL_BARS:
        raise MusicgenError(f"at most {MAX_FILL_BARS} bars can be rewritten at once, not {stop - first}")
    a = int(starts[first - 1])
    b = int(starts[stop - 1]) if stop - 1 < n_bars else None  # None: the gap runs to the piece's end
    meter = meter_at(prepared, a)
    if any(meter_at(prepared, int(t)) != meter for t in starts[first:stop - 1]):
        raise MusicgenError(f"the meter changes inside bars {first}-{stop - 1}; choose bars in one meter")
    meter_id = gen.tokenizer.vocab.get(f"TimeSig_{meter[0]}/{meter[1]}")
    if meter_id is None:
        raise MusicgenError(f"this model has no {meter[0]}/{meter[1]} meter to write bars in")

    left, notes = left_tokens(gen, prepared, starts, first, cfg.seed_bars)
    right = right_tokens(gen, prepared, starts, stop) if b is not None else []
    per = cfg.candidates if len(right) > 1 else 1  # nothing after the gap to choose by
    fill = SampleConfig(**{**cfg.__dict__, "bars": stop - first, "end": False})
    prime = [gen.tokenizer.vocab[tk.style_token(cfg.style)]] + left
    run = gen.sample_after(prime, fill, cfg.variations * per, meter=meter_id, keep_state=per > 1)
    keep = list(range(0, len(run.new), per))
    if per > 1:
        fit = right_loglik(gen, run, right)
        keep = [max(range(v, v + per), key=lambda i: (fit[i], -i)) for v in keep]
        notes.append(f"each variation is the best of {per} takes at leading into bar {stop}")

    key = None if original.key_signatures else seed_key(original)
    scores = []
    for i in keep:
        middle = tk.decode(gen.tokenizer, run.new[i])
        out = splice(original, middle, a, b)
        if key is not None:
            out.key_signatures = [key]
        scores.append(out)
    fill_end = b if b is not None else a + (stop - first) * original.tpq * 4 * meter[0] // meter[1]
    return Generation(scores, a, sum(len(r) for r in run.new), time.perf_counter() - t0, gen.device,
                      [left + run.new[i] for i in keep], notes, prime_seconds=run.prime_seconds,
                      sample_seconds=run.sample_seconds, fill_end_tick=int(fill_end))


def left_tokens(gen: Generator, prepared: symusic.Score, starts: np.ndarray, first: int,
                seed_bars: int = 0) -> tuple[list[int], list[str]]:
    """Token ids of bars 1..first-1 as the seed of the fill, and the notes about trimming it. Empty
    bars just before the gap are written out (up to 4), so the fill starts where the piece does."""
    a = int(starts[first - 1])
    if first == 1:
        return [], []
    before = prepared.clip(0, a, clip_end=False)
    if before.note_num() == 0:
        return empty_bars(gen, min(first - 1, 4), meter_at(prepared, a)), []
    ids, notes = gen.seed_tokens(before, seed_bars)
    onsets = np.concatenate([t.notes.numpy()["time"] for t in before.tracks if len(t.notes)])
    last_bar = int(np.searchsorted(starts, onsets.max(), side="right"))  # 1-based bar of the last onset
    return ids + empty_bars(gen, min(first - 1 - last_bar, 4), meter_at(prepared, a)), notes


def empty_bars(gen: Generator, n: int, meter: tuple[int, int]) -> list[int]:
    """REMI of n bars with nothing in them: a bar line and the meter each."""
    ts = gen.tokenizer.vocab.get(f"TimeSig_{meter[0]}/{meter[1]}")
    return [gen.grammar.bar_id, ts] * n if ts is not None and n > 0 else []


def right_tokens(gen: Generator, prepared: symusic.Score, starts: np.ndarray, stop: int) -> list[int]:
    """Token ids of the RIGHT_BARS bars from bar `stop` on (its bar line first)."""
    lo = int(starts[stop - 1])
    hi_bar = stop - 1 + RIGHT_BARS
    hi = int(starts[hi_bar]) if hi_bar < len(starts) else prepared.end() + 1
    after = clip_from(prepared, lo)
    after = after.clip(0, hi - lo, clip_end=False)
    return tk.encode(gen.tokenizer, after) if after.note_num() else []


@torch.no_grad()
def right_loglik(gen: Generator, run, right: list[int]) -> np.ndarray:
    """log p(right | left, middle_i) for every sampled middle: the bar line that closes the middle
    (the sampler kept its probability), then the right side read from each middle's final state."""
    B = len(run.new)
    idx = torch.tensor([right] * B, device=gen.device)
    logits, _, _ = gen.model(idx[:, :-1], h=run.h_end.to(gen.device))
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, idx[:, 1:, None])[..., 0]
    return run.lp_bar + logp.sum(1).cpu().numpy().astype(np.float64)


def splice(original: symusic.Score, middle: symusic.Score, a: int, b: int | None) -> symusic.Score:
    """The original with the notes (and pedal and controller events) that start in [a, b) replaced
    by `middle`'s notes, moved to start at tick a and rescaled to the original's resolution."""
    out = original.copy()
    hi = b if b is not None else np.iinfo(np.int64).max
    for track in out.tracks:
        if track.is_drum:
            continue
        track.notes = [n for n in track.notes if not a <= n.time < hi]
        track.pedals = [p for p in track.pedals if not a <= p.time < hi]
        track.controls = [c for c in track.controls if not a <= c.time < hi]
    target = next((t for t in out.tracks if not t.is_drum), None)
    if target is None:
        target = symusic.Track(name="Piano", program=0)
        out.tracks.append(target)
    ratio = original.tpq / middle.tpq
    for n in (n for t in middle.tracks for n in t.notes):
        target.notes.append(symusic.Note(a + round(n.time * ratio), max(1, round(n.duration * ratio)),
                                         n.pitch, n.velocity))
    target.notes.sort()
    return out
