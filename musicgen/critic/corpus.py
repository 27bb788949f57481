"""The critic's corpus: MIDI files -> rendered log band power (cached) -> pieces and training crops.

Every piece of a composer with at least `min_pieces` files is rendered whole with the shipped
piano soundfont at 16 kHz and turned into log band-power frames (mel or per-key bands) once
(runs/classifier-cache/). The split is the generator's (`data.assign_splits` over every file
of the corpus), so held-out pieces are the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicgen.critic.features import AMIN, FLOOR_DB, FeatureConfig, crop, log_mel, shift_keys
from musicgen.data import assign_splits, find_midi_files, style_of
from musicgen.errors import MusicgenError

log = logging.getLogger(__name__)


@dataclass
class PieceMel:
    path: str  # relative to the corpus root: the key of the split
    label: int  # index into the classes
    split: str  # "train", "val" or "test"
    mel: np.ndarray  # (frames, n_mels) float16 log-mel in dB of the whole rendered piece


def composer_classes(rels: list[str], min_pieces: int) -> list[str]:
    """Composers (first folder level) with at least min_pieces files, sorted."""
    counts = Counter(style_of(r) for r in rels)
    return sorted(s for s, n in counts.items() if n >= min_pieces)


def _feature_key(fcfg: FeatureConfig) -> bytes:
    from musicgen.render.audio import default_soundfont

    sf = default_soundfont()
    return json.dumps([fcfg.render_settings(), sf.name, sf.stat().st_size, AMIN], sort_keys=True).encode()


def cache_path(path: Path, fcfg: FeatureConfig, cache_dir: Path) -> Path:
    """Where piece_mel keeps a render: named by file content and feature settings."""
    # "shift=0": renders in other keys once had their own files; the name of the one in the
    # written key is kept, so caches filled before stay valid
    key = hashlib.sha1(path.read_bytes() + _feature_key(fcfg) + b"shift=0").hexdigest()[:20]
    return cache_dir / f"{key}.npy"


def piece_mel(path: Path, fcfg: FeatureConfig, cache_dir: Path) -> np.ndarray:
    """(frames, n_mels) float16 log-mel of a MIDI file rendered whole, cached (cache_path)."""
    from musicgen.render.audio import render_audio
    from musicgen.tokenizer import read_midi

    cached = cache_path(path, fcfg, cache_dir)
    if cached.is_file():
        return np.load(cached)
    audio = render_audio(read_midi(path), sample_rate=fcfg.sample_rate)  # (n, 2), the renderer's loudness
    mel = log_mel(audio.mean(axis=1), fcfg).astype(np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")  # worker processes never share one
    np.save(tmp, mel)
    os.replace(tmp, cached)  # a killed run never leaves half a file under the real name
    return mel


def _cache_one(path: Path, fcfg: FeatureConfig, cache_dir: Path) -> None:
    torch.set_num_threads(1)  # one core per worker process
    try:
        piece_mel(path, fcfg, cache_dir)
    except Exception:  # reported when the main process loads the piece again
        pass


def render_in_parallel(paths: list[Path], fcfg: FeatureConfig, cache_dir: Path, workers: int) -> None:
    """Fill the cache with the renders of `paths` it lacks, in `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    missing = {}  # one job per cache file: identical files render once
    for f in paths:
        target = cache_path(f, fcfg, cache_dir)
        if not target.is_file():
            missing.setdefault(target, f)
    if not missing:
        return
    # spawn, not fork: a forked copy of a process that has run torch can hang in its thread pool
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for done in [pool.submit(_cache_one, f, fcfg, cache_dir) for f in missing.values()]:
            done.result()


def load_pieces(root: str | Path, min_pieces: int, fcfg: FeatureConfig, cache_dir: str | Path,
                workers: int = 1) -> tuple[list[str], list[PieceMel], list[tuple[str, str]]]:
    """(classes, pieces of those classes with their split and log-mel, skipped (path, reason)).

    Pieces not in the cache yet are rendered by `workers` processes first.
    """
    root = Path(root)
    files = find_midi_files(root)
    if not files:
        raise MusicgenError(f"no .mid/.midi files under {root}; pass --data with the piano-midi.de folder")
    rels = [f.relative_to(root).as_posix() for f in files]
    splits = assign_splits(rels)  # over every file, as the generator does: the same held-out pieces
    classes = composer_classes(rels, min_pieces)
    if len(classes) < 2:
        raise MusicgenError(f"fewer than two composers have {min_pieces} or more pieces under {root}")
    pieces, skipped = [], []
    todo = [(f, r) for f, r in zip(files, rels, strict=True) if style_of(r) in classes]
    if workers > 1:
        render_in_parallel([f for f, _ in todo], fcfg, Path(cache_dir), workers)
    for i, (f, rel) in enumerate(todo):
        try:
            mel = piece_mel(f, fcfg, Path(cache_dir))
        except Exception as e:  # one bad file never aborts a run
            skipped.append((rel, str(e)))
            log.warning("skipped %s: %s", rel, e)
            continue
        pieces.append(PieceMel(rel, classes.index(style_of(rel)), splits[rel], mel))
        if (i + 1) % 25 == 0:
            print(f"  features of {i + 1}/{len(todo)} pieces", flush=True)
    return classes, pieces, skipped


class ClipSampler:
    """Random training crops: a class uniformly, a piece of it uniformly, a start uniformly, a
    level shift and (semitone bands) a transposition of up to `pitch_shift` keys."""

    def __init__(self, pieces: list[PieceMel], n_classes: int, frames: int, gain_db: float, seed: int,
                 pitch_shift: int = 0):
        self.by_class = [[p for p in pieces if p.label == c] for c in range(n_classes)]
        self.by_class = [ps for ps in self.by_class if ps]
        self.frames, self.gain_db, self.pitch_shift = frames, gain_db, pitch_shift
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, frames, n_mels) float32 dB, y (B,) class indices."""
        xs, ys = [], []
        rng = self.rng
        for _ in range(size):
            group = self.by_class[rng.integers(len(self.by_class))]
            p = group[rng.integers(len(group))]
            # earlier versions drew a render here (renders in other keys were an option); with the
            # written key alone that was rng.integers(1), which returns 0 without touching the bit
            # generator (checked: numpy 2.4), so dropping it leaves every later draw the same
            mel = p.mel
            start = int(rng.integers(0, max(1, len(mel) - self.frames + 1)))
            x = np.maximum(crop(mel, start, self.frames) + rng.uniform(-self.gain_db, self.gain_db), FLOOR_DB)
            if self.pitch_shift:
                x = shift_keys(x, int(rng.integers(-self.pitch_shift, self.pitch_shift + 1)))
            xs.append(x)
            ys.append(p.label)
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys)
