"""The corpus: find MIDI files, split by piece, tokenize once (cached), serve training windows."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("MUSICGEN_CACHE", Path.home() / ".cache" / "musicgen"))
# music21's own corpus: the training set of last resort on a machine without ../shared
FALLBACK_COMPOSERS = {"bach": 150, "beethoven": 26, "mozart": 16, "haydn": 9, "monteverdi": 40}


@dataclass
class Piece:
    path: str  # relative to the corpus root: the key of the split
    style: str  # the composer, from the first folder level
    split: str  # "train", "val" or "test"
    ids: np.ndarray  # token ids, without the style token


@dataclass
class Corpus:
    root: str
    pieces: list[Piece]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of skipped files

    def split(self, name: str) -> list[Piece]:
        """The pieces of one split."""
        return [p for p in self.pieces if p.split == name]

    def split_table(self) -> dict[str, list[str]]:
        """{split: [relative paths]}, written beside every run."""
        return {s: sorted(p.path for p in self.split(s)) for s in ("train", "val", "test")}


def find_midi_files(root: str | Path) -> list[Path]:
    """Every .mid/.midi under root, any case, in a stable order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in tk.MIDI_SUFFIXES)


def style_of(rel: str) -> str:
    """The composer: the first folder level of the relative path ('any' for files at the root)."""
    parts = Path(rel).parts
    return parts[0].lower() if len(parts) > 1 else tk.ANY_STYLE


def path_rank(rel: str) -> str:
    """A fixed shuffle of the pieces: sorting by the path's SHA-1 is the same on every machine."""
    return hashlib.sha1(rel.encode()).hexdigest()


def deal_by_style(paths: list[str]) -> dict[str, list[str]]:
    """{composer: its paths in the fixed path-hash order}: the deck both the split and the critic's
    cross-validation folds are dealt from, so both stratify by composer the same way."""
    by_style: dict[str, list[str]] = {}
    for p in paths:
        by_style.setdefault(style_of(p), []).append(p)
    return {style: sorted(files, key=path_rank) for style, files in by_style.items()}


def assign_splits(paths: list[str], val: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Piece-level split from the relative paths alone, stratified by composer.

    Within each composer the files are ordered by a hash of their path; the first
    share goes to test, the next to validation. Every composer with three or more
    pieces gets at least one held-out piece of each kind.
    """
    out = {}
    for files in deal_by_style(paths).values():
        n = len(files)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        for i, f in enumerate(files):
            out[f] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def data_root(config: dict, data: str = "") -> Path:
    """The corpus to read: --data, else the one the checkpoint was trained on."""
    root = Path(data or config.get("data_root", ""))
    if not str(root) or not root.is_dir():
        raise MusicgenError(f"the corpus folder {str(root) or '(none recorded)'} does not exist; "
                            "pass --data DIR with the corpus this checkpoint was trained on")
    return root


def split_pieces(pieces: list[Piece], config: dict, name: str) -> list[Piece]:
    """The pieces the checkpoint's own split put in `name`, in path order."""
    wanted = config.get("split", {}).get(name)
    if wanted is None:
        raise MusicgenError("the checkpoint records no train/val/test split (config.json 'split')")
    by_path = {p.path: p for p in pieces}
    missing = [w for w in wanted if w not in by_path]
    if missing:
        raise MusicgenError(f"{len(missing)} {name} pieces of the checkpoint are not in the corpus "
                            f"(first: {missing[0]}); is --data the corpus it was trained on?")
    return [by_path[w] for w in sorted(wanted)]


def with_style(piece: Piece, tokenizer) -> np.ndarray:
    """The stream the GRU is scored on: the piece's style token, then its tokens."""
    return np.concatenate([[tokenizer.vocab[tk.style_token(piece.style)]], piece.ids]).astype(np.int64)


def load_corpus(root: str | Path, tokenizer=None, cache_dir: Path = CACHE_DIR) -> Corpus:
    """Tokenize every MIDI under root (cached by file content and tokenizer), split by piece.

    Unreadable files are skipped with a warning and listed in Corpus.bad. When no tokenizer
    is given, one is made with a style token per composer folder.
    """
    root = Path(root)
    files = find_midi_files(root)
    if not files:
        raise MusicgenError(f"no .mid/.midi files under {root}")
    rels = [f.relative_to(root).as_posix() for f in files]
    if tokenizer is None:
        tokenizer = tk.make_tokenizer([style_of(r) for r in rels])
    splits = assign_splits(rels)
    cache = _cache_path(cache_dir, tokenizer, files)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        ids_by_rel = {r: stored[r] for r in stored.files if r != "__bad__"}
        bad = json.loads(str(stored["__bad__"]))
    else:
        ids_by_rel, bad = {}, []
        for f, rel in zip(files, rels):
            try:
                score = tk.prepare(tk.read_midi(f))
                if score.note_num() == 0:
                    raise MusicgenError("no piano notes")
                ids_by_rel[rel] = np.asarray(tk.encode(tokenizer, score), dtype=np.int16)
            except Exception as e:  # one bad file never aborts a run
                bad.append([rel, str(e)])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, __bad__=np.array(json.dumps(bad)), **ids_by_rel)
    for rel, reason in bad:
        log.warning("skipped %s: %s", rel, reason)
    pieces = [Piece(r, style_of(r), splits[r], ids_by_rel[r]) for r in rels if r in ids_by_rel]
    if not pieces:
        raise MusicgenError(f"none of the {len(files)} MIDI files under {root} could be read")
    return Corpus(str(root), pieces, [tuple(b) for b in bad]), tokenizer


def _cache_path(cache_dir: Path, tokenizer, files: list[Path]) -> Path:
    h = hashlib.sha1(repr(sorted(tokenizer.vocab.items())).encode())
    h.update(tk.PREPARE_VERSION.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return cache_dir / f"corpus-{h.hexdigest()[:16]}.npz"


def fallback_corpus(cache_dir: Path = CACHE_DIR) -> Path:
    """Write part of music21's bundled corpus as MIDI, one folder per composer (cached)."""
    root = cache_dir / "music21-corpus"
    done = root / ".complete"
    if done.is_file():
        return root
    from music21 import corpus  # heavy; only needed on a machine without a MIDI corpus

    for composer, limit in FALLBACK_COMPOSERS.items():
        (root / composer).mkdir(parents=True, exist_ok=True)
        for path in corpus.getComposer(composer)[:limit]:
            out = root / composer / (Path(path).stem + ".mid")
            if out.exists():
                continue
            try:
                corpus.parse(path).write("midi", fp=str(out))
            except Exception as e:  # some corpus entries have no notes or odd encodings
                log.warning("music21 corpus %s skipped: %s", path, e)
    done.write_text("ok")
    return root


class WindowSampler:
    """Random training windows: style token + a slice of one piece, transposed at random.

    Windows are drawn in proportion to piece length; a window is `seq_len + 1` tokens
    so inputs and shifted targets both have seq_len.
    """

    def __init__(self, pieces: list[Piece], tokenizer, seq_len: int, transpose: int = 5,
                 style_dropout: float = 0.1, seed: int = 0):
        self.pieces, self.seq_len = pieces, seq_len
        self.style_ids = {p.style: tokenizer.vocab[tk.style_token(p.style)] for p in pieces}
        self.any_id = tokenizer.vocab[tk.style_token(tk.ANY_STYLE)]
        self.pad_id = tokenizer.pad_token_id
        self.transpose, self.style_dropout = transpose, style_dropout
        lengths = np.array([len(p.ids) for p in pieces], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)
        self.shift_tables = _pitch_shift_tables(tokenizer, transpose)

    @property
    def tokens(self) -> int:
        """Training tokens in one pass over the pieces."""
        return int(sum(len(p.ids) for p in self.pieces))

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y: (B, seq_len) int64; y is x shifted by one, pad where the piece ran out."""
        out = np.full((batch_size, self.seq_len + 1), self.pad_id, dtype=np.int64)
        for b, i in enumerate(self.rng.choice(len(self.pieces), batch_size, p=self.weights)):
            piece = self.pieces[i]
            n = len(piece.ids)
            start = int(self.rng.integers(0, max(1, n - self.seq_len + 1)))
            chunk = piece.ids[start:start + self.seq_len].astype(np.int64)
            if self.transpose:
                chunk = self._transpose(chunk)
            drop = self.rng.random() < self.style_dropout
            out[b, 0] = self.any_id if drop else self.style_ids[piece.style]
            out[b, 1:1 + len(chunk)] = chunk
        t = torch.from_numpy(out)
        return t[:, :-1], t[:, 1:]

    def _transpose(self, chunk: np.ndarray) -> np.ndarray:
        for _ in range(4):  # a shift that pushes a note off the keyboard is tried again
            k = int(self.rng.integers(-self.transpose, self.transpose + 1))
            table = self.shift_tables[k]
            moved = table[chunk]
            if (moved >= 0).all():
                return moved
        return chunk


def _pitch_shift_tables(tokenizer, max_shift: int) -> dict[int, np.ndarray]:
    """For each shift k, id -> id with Pitch tokens moved k semitones (-1 where off the keys)."""
    vocab = tokenizer.vocab
    tables = {}
    for k in range(-max_shift, max_shift + 1):
        table = np.arange(len(vocab), dtype=np.int64)
        for token, i in vocab.items():
            if token.startswith("Pitch_"):
                table[i] = vocab.get(f"Pitch_{int(token[6:]) + k}", -1)
        tables[k] = table
    return tables

