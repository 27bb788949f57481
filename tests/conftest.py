"""Fixtures: tiny MIDI built in code, and one tiny model trained for real on it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Keep the corpus cache out of the user's home while testing.
os.environ.setdefault("MUSICGEN_CACHE", tempfile.mkdtemp(prefix="musicgen-test-cache-"))

import symusic  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is as fast, and never oversubscribes 2 cores

TPQ = 480


def make_score(notes, tempos=((0, 120.0),), time_sig=(4, 4), tracks=1, drum=False) -> symusic.Score:
    """A Score from (onset_quarters, duration_quarters, pitch, velocity[, track]) tuples."""
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, *time_sig))
    for t, qpm in tempos:
        score.tempos.append(symusic.Tempo(int(t * TPQ), qpm))
    for i in range(tracks):
        score.tracks.append(symusic.Track(name=f"hand {i}", program=0, is_drum=drum))
    for n in notes:
        on, dur, pitch, vel, *rest = n
        tr = rest[0] if rest else 0
        score.tracks[tr].notes.append(symusic.Note(int(on * TPQ), int(dur * TPQ), pitch, vel))
    return score


def write_score(score: symusic.Score, path: Path) -> Path:
    """Dump a Score as a MIDI file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def tiny_piece(shift: int = 0, bars: int = 8) -> symusic.Score:
    """Two hands in 4/4: an eighth-note scale run over whole-bar bass chords."""
    notes = []
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    for bar in range(bars):
        for i, step in enumerate(scale):
            notes.append((bar * 4 + i * 0.5, 0.5, 60 + shift + step, 80, 0))
        for p in (36, 43, 48):
            notes.append((bar * 4, 4, p + shift, 60, 1))
    return make_score(notes, tracks=2)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Two composers' folders of small pieces (8 files each)."""
    root = tmp_path_factory.mktemp("corpus")
    for composer, base in (("alpha", 0), ("beta", 5)):
        for i in range(8):
            write_score(tiny_piece(shift=base + (i % 3)), root / composer / f"piece{i}.mid")
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory):
    """A small GRU trained on the tiny corpus; returns (run folder, loss history)."""
    from musicgen.model import ModelConfig
    from musicgen.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    tcfg = TrainConfig(data=str(tiny_corpus), out=str(out), seq_len=64, batch_size=8, lr=1e-2,
                       epochs=3, steps_per_epoch=100, transpose=0, patience=10, half=False,
                       threads=1, carry_state=False)
    mcfg = ModelConfig(n_embd=32, n_hidden=64, n_layer=1)
    train(tcfg, mcfg)
    return out


def write_corpus(root: Path, names: list[str], shift: int = 0) -> Path:
    """A corpus folder of tiny pieces at the given relative paths (piece i shifted by shift + i % 3)."""
    for i, name in enumerate(names):
        write_score(tiny_piece(shift=shift + i % 3, bars=4), root / name)
    return root


def write_manifest(root: Path, rows: list[dict]) -> Path:
    """root/manifest.csv from rows of {column: value} (fields with commas are quoted, as in the corpora)."""
    import csv

    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"
