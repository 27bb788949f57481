"""Endings: how final a bar sounds, learned from how the training pieces end.

The GRU was trained on windows of pieces and never saw where one stops, so `generate --end`
samples several continuations per variation and keeps the one whose last bar a small logistic
model, fitted on the last bars of the training pieces against their other bars, finds most
final. The features are read relative to the key in force (Krumhansl-Schmuckler over the 16
bars that end with it: over the 8 before alone, the dominant's pull before a cadence often wins),
so one model serves every key: the pitch classes and the bass of the bar's last sonority, the
bar's pitch-class weights, and how long that sonority is held.

`musicgen fit-ending --data ...` fits it on the training split and writes ending.json (plain
numbers, no pickle) beside the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from musicgen import metrics
from musicgen import tokenizer as tk
from musicgen.coherence import estimate_key
from musicgen.credits import CORPORA, weights_licence
from musicgen.errors import MusicgenError
from musicgen.resources import MODEL_DIR

KEY_BARS = 16  # the key in force at a bar: the Krumhansl-Schmuckler key of the 16 bars it closes
ENDING_FILE = "ending.json"
NEGATIVES_PER_PIECE = 8  # other bars per piece, besides its penultimate one (the hardest negative)
FEATURES = ([f"last_pc_{i}" for i in range(12)] + [f"bass_pc_{i}" for i in range(12)]
            + [f"bar_pc_{i}" for i in range(12)] + [f"minor_last_pc_{i}" for i in range(12)]
            + ["minor", "held_share", "rings_to_bar_line", "log_onsets", "bias"])


@dataclass
class EndingModel:
    weights: np.ndarray  # one per FEATURES name, the bias last
    info: dict  # what it was fitted on and how well it separates held-out last bars

    def score(self, score: symusic.Score, bar: int | None = None) -> float:
        """Log-odds that bar `bar` (0-based; default: the last bar with a note) ends the piece."""
        x = bar_features(score, bar)
        return -np.inf if x is None else float(x @ self.weights)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"features": FEATURES, "weights": self.weights.round(6).tolist(),
                                          "info": self.info}, indent=1) + "\n")


def load_ending(folder: str | Path | None = None) -> EndingModel:
    """The ending model beside a checkpoint, else the shipped one (it does not depend on the GRU)."""
    for d in ([Path(folder)] if folder else []) + [MODEL_DIR]:
        path = d / ENDING_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("features") != FEATURES:
                raise MusicgenError(f"{path} was fitted with other features; refit it: musicgen fit-ending")
            return EndingModel(np.array(saved["weights"], dtype=np.float64), saved.get("info", {}))
    raise MusicgenError(f"no {ENDING_FILE} beside the model; fit one: musicgen fit-ending --data DIR")


def last_sounding_bar(score: symusic.Score) -> int | None:
    """0-based index of the last bar in which a note starts; None without notes."""
    onsets = metrics.note_array(score)["time"]
    if not len(onsets):
        return None
    starts = tk.bar_starts(score, int(onsets.max()) + 1)
    return int(np.searchsorted(starts, onsets.max(), side="right") - 1)


def key_in_force(score: symusic.Score, bar: int, starts: np.ndarray | None = None) -> tuple[int, str] | None:
    """The Krumhansl-Schmuckler key of the KEY_BARS bars that end with bar `bar`: the key an ending
    has to close in."""
    starts = tk.bar_starts(score, score.end() + 1) if starts is None else starts
    lo, hi = max(bar + 1 - KEY_BARS, 0), bar + 1
    a = int(starts[lo])
    b = int(starts[hi]) if hi < len(starts) else score.end() + 1
    return estimate_key(score.clip(a, b, clip_end=False).shift_time(-a), bars=None)


def last_sonority(score: symusic.Score, bar: int, starts: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """(the pitches sounding at the bar's last onset, that onset, the bar's start and end ticks)."""
    notes = metrics.note_array(score)
    lo = int(starts[bar])
    if bar + 1 < len(starts):
        hi = int(starts[bar + 1])
    else:  # the last bar line is not in `starts`: the bar is as long as the one before
        hi = lo + (lo - int(starts[bar - 1]) if bar else 4 * score.tpq)
    ends = notes["time"] + notes["duration"]
    inside = (notes["time"] >= lo) & (notes["time"] < hi)
    if not inside.any():
        return np.zeros(0, np.int64), lo, lo, hi
    last = int(notes["time"][inside].max())
    ringing = (notes["time"] <= last) & (ends > last)
    return notes["pitch"][ringing], last, lo, hi


def bar_features(score: symusic.Score, bar: int | None = None) -> np.ndarray | None:
    """The FEATURES of one bar (0-based; default: the last bar with a note); None when the bar has
    no note or no key can be read before it."""
    bar = last_sounding_bar(score) if bar is None else bar
    if bar is None:
        return None
    starts = tk.bar_starts(score, score.end() + 1)
    if bar >= len(starts):
        return None
    key = key_in_force(score, bar, starts)
    pitches, last, lo, hi = last_sonority(score, bar, starts)
    if key is None or not len(pitches):
        return None
    tonic, minor = key[0], float(key[1] == "minor")
    rel = (pitches - tonic) % 12
    last_pc = np.bincount(rel, minlength=12).clip(0, 1).astype(np.float64)
    bass = np.zeros(12)
    bass[(int(pitches.min()) - tonic) % 12] = 1.0
    notes = metrics.note_array(score)
    ends = np.minimum(notes["time"] + notes["duration"], hi)
    inside = (notes["time"] >= lo) & (notes["time"] < hi)
    weights = np.bincount((notes["pitch"][inside] - tonic) % 12,
                          weights=(ends - notes["time"])[inside].astype(np.float64), minlength=12)
    bar_pc = weights / max(weights.sum(), 1e-9)
    ring_end = int((notes["time"] + notes["duration"])[(notes["time"] <= last)
                                                        & (notes["time"] + notes["duration"] > last)].max())
    held = (min(ring_end, hi) - last) / max(hi - lo, 1)
    tail = [minor, held, float(ring_end >= hi - score.tpq // 8), np.log1p(inside.sum()), 1.0]
    return np.concatenate([last_pc, bass, bar_pc, minor * last_pc, tail])


def examples(score: symusic.Score, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """(features, 1) of a piece's last sounding bar, (features, 0) of its penultimate one and of
    NEGATIVES_PER_PIECE other bars with notes, drawn by rng."""
    last = last_sounding_bar(score)
    if last is None or last < KEY_BARS:
        return []
    out = [(bar_features(score, last), 1), (bar_features(score, last - 1), 0)]
    others = np.arange(KEY_BARS, last - 1)
    for bar in rng.permutation(others)[:NEGATIVES_PER_PIECE]:
        out.append((bar_features(score, int(bar)), 0))
    return [(x, y) for x, y in out if x is not None]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Weights of an L2-regularized logistic regression (Newton's method), the classes weighted to
    count equally; the last column is the bias and goes unpenalized."""
    w = np.zeros(x.shape[1])
    sample_w = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (sample_w * (p - y)) + penalty * w
        hess = (x * (sample_w * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive outscores a negative (ties count half)."""
    pos, neg = scores[y == 1], scores[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def read_pieces(roots: list[Path]) -> dict[str, list[symusic.Score]]:
    """{split: prepared scores} of every taken file under the roots, split by work as training does."""
    from musicgen.data import corpus_splits, taken_files

    files = {root.name: taken_files(root) for root in roots}
    splits = corpus_splits(files)
    out: dict[str, list[symusic.Score]] = {"train": [], "val": [], "test": []}
    for root in roots:
        for rel in files[root.name]:
            try:
                out[splits[root.name, rel]].append(tk.prepare(tk.read_midi(root / rel)))
            except MusicgenError:
                continue
    return out


def fit(roots: list[Path], seed: int = 0) -> EndingModel:
    """Fit on the training split of the corpora; report the AUC on the validation split."""
    pieces = read_pieces(roots)
    rng = np.random.default_rng(seed)
    data = {}
    for split in ("train", "val"):
        rows = [e for s in pieces[split] for e in examples(s, rng)]
        data[split] = (np.stack([x for x, _ in rows]), np.array([y for _, y in rows], dtype=np.float64))
    w = fit_logistic(*data["train"])
    x_val, y_val = data["val"]
    known = [CORPORA.get(r.name, (r.name, ("unknown",))) for r in roots]
    info = {"corpora": [r.name for r in roots], "attribution": "; ".join(credit for credit, _ in known),
            "licence": weights_licence([lic for _, lics in known for lic in lics]),
            "train_pieces": len(pieces["train"]),
            "train_examples": int(len(data["train"][1])), "val_pieces": len(pieces["val"]),
            "val_auc": round(auc(x_val @ w, y_val), 4),
            "val_auc_last_vs_penultimate": round(_pair_auc(x_val @ w, y_val), 4)}
    return EndingModel(w, info)


def _pair_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """How often a piece's last bar outscores its own penultimate bar (rows come in that order)."""
    starts = np.flatnonzero(y == 1)
    pairs = [(scores[i], scores[i + 1]) for i in starts if i + 1 < len(y) and y[i + 1] == 0]
    return float(np.mean([a > b for a, b in pairs])) if pairs else float("nan")


def holds_tonic_chord(score: symusic.Score, bar: int | None = None) -> bool | None:
    """Whether a bar (0-based; default: the last with a note) closes on the tonic chord of the key in
    force: the pitches sounding at its last onset are all of the tonic triad, the tonic among them
    and in the bass (a bare tonic or its octaves count). None without notes or key."""
    bar = last_sounding_bar(score) if bar is None else bar
    if bar is None:
        return None
    starts = tk.bar_starts(score, score.end() + 1)
    key = key_in_force(score, bar, starts) if bar < len(starts) else None
    pitches = last_sonority(score, bar, starts)[0] if key is not None else ()
    if not len(pitches):
        return None
    tonic, mode = key
    triad = {0, 3 if mode == "minor" else 4, 7}
    rel = set(((pitches - tonic) % 12).tolist())
    return bool(0 in rel and rel <= triad and (int(pitches.min()) - tonic) % 12 == 0)


def hold_last_chord(score: symusic.Score, bar: int | None = None) -> symusic.Score:
    """The score with the notes of its last sonority held to the end of their bar, as a final chord is."""
    bar = last_sounding_bar(score) if bar is None else bar
    if bar is None:
        return score
    starts = tk.bar_starts(score, score.end() + 1)
    _, last, _, hi = last_sonority(score, bar, starts)
    for track in score.tracks:
        for n in track.notes:
            if n.time <= last < n.time + n.duration < hi:
                n.duration = hi - n.time
    return score


def main(args) -> int:
    model = fit([Path(d) for d in args.data], seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(json.dumps(model.info, indent=1))
    print(f"wrote {out}")
    return 0
