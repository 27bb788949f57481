"""The seed paper's Table 1 re-run on Chopin: a windowed BiGRU on note IDs, random vs piece split.

The paper reads 40 note IDs (music21 style: a note is its pitch name, a chord the dot-joined
normal order of its pitch classes) and predicts the 41st with a stacked BiGRU, reporting
99.2% / 98.5% train / validation accuracy (loss 0.087 / 0.093) on windows split at random.
Neighbouring windows share 39 of their 40 notes and overlap their targets, so a random split
puts a near-copy of nearly every validation window in training: validation then measures
memory. Here the same model is trained on (a) a random split of windows and (b) a split by
piece, (c) our stateful GRU learns the same note-ID sequences on the same piece split, and
(d) a lookup table with no learning at all answers each window with whatever followed its
last 39 notes in the training windows: what pure memory scores under either split.

python -m musicgen.paper --data /work/shared/data/piano-midi-de/chopin --out runs/paper
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import symusic
import torch
import torch.nn.functional as F

from musicgen.data import assign_splits, find_midi_files, style_of
from musicgen.errors import MusicgenError
from musicgen.model import GRULM, BiGRUWindow, ModelConfig, count_params
from musicgen.tokenizer import ANY_STYLE, read_midi

PAPER_TABLE1 = {"train_acc": 0.992, "val_acc": 0.985, "train_loss": 0.087, "val_loss": 0.093}
PITCH_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")  # music21's spelling
PAD, START = "<pad>", "<start>"  # ids 0 and 1: padding (never a target), the GRU's first input


@dataclass
class PaperConfig:
    data: str = ""  # folder of the Chopin MIDI files
    out: str = "runs/paper"  # table.json, table.md and one history CSV per run
    runs: str = "random,piece,gru,lookup"  # rows: random / piece (BiGRU), gru (stateful), lookup
    n_embd: int = 64  # note-ID embedding width
    n_hidden: int = 128  # GRU width (per direction for the BiGRU); small enough for a CPU budget
    n_layer: int = 2  # stacked layers
    dropout: float = 0.2  # as the paper
    window: int = 40  # notes read to predict the next, as the paper
    batch_size: int = 64  # windows (BiGRU) or chunks (GRU) per step
    lr: float = 1e-3  # Adam
    val_share: float = 0.2  # random split: share of windows held out for validation
    patience: int = 10  # epochs without a better validation loss before stopping
    max_epochs: int = 500  # upper bound; the time cap or patience ends runs first
    max_minutes: float = 8.0  # wall-clock cap per run, checked after every step
    gru_seq_len: int = 128  # stateful GRU: notes per training chunk
    train_eval_windows: int = 8192  # training windows (a fixed random subset) scored per epoch
    seed: int = 0  # shuffles, splits of windows, weights
    threads: int = 1  # torch CPU threads; the machine is shared


def pitch_name(midi: int) -> str:
    """music21's name of a MIDI pitch: 61 -> 'C#4', 70 -> 'B-4'."""
    return f"{PITCH_NAMES[midi % 12]}{midi // 12 - 1}"


@functools.cache
def normal_order(pitch_classes: tuple[int, ...]) -> str:
    """music21's normal order of a pitch-class set, dot-joined: (4, 7, 0) -> '0.4.7'."""
    from music21 import chord  # heavy; only the paper re-run needs it

    return ".".join(str(pc) for pc in chord.Chord(list(pitch_classes)).normalOrder)


def note_ids(score: symusic.Score) -> list[str]:
    """The paper's encoding: one ID per onset, in time order; rests and durations are dropped."""
    onsets: dict[int, set[int]] = {}
    for track in score.tracks:
        if track.is_drum:
            continue
        for n in track.notes:
            onsets.setdefault(n.time, set()).add(n.pitch)
    out = []
    for t in sorted(onsets):
        pitches = sorted(onsets[t])
        out.append(pitch_name(pitches[0]) if len(pitches) == 1
                   else normal_order(tuple(sorted({p % 12 for p in pitches}))))
    return out


def load_sequences(root: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({split key: note IDs}, {split key: split}) of every MIDI file under root.

    Files directly in root are keyed as `<folder name>/<file>`, so a composer folder gets the
    same piece split as it does inside the whole corpus (assign_splits hashes these paths).
    """
    files = find_midi_files(root)
    if not files:
        raise MusicgenError(f"no .mid/.midi files under {root}")
    seqs = {}
    for f in files:
        rel = f.relative_to(root).as_posix()
        key = rel if style_of(rel) != ANY_STYLE else f"{root.name}/{rel}"
        seqs[key] = note_ids(read_midi(f))
    return seqs, assign_splits(sorted(seqs))


def bigru_windows(ids: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (window -> next token) pairs of one sequence, as the seed paper builds them."""
    if len(ids) <= window:
        return np.empty((0, window), np.int64), np.empty((0,), np.int64)
    x = np.lib.stride_tricks.sliding_window_view(ids[:-1], window).astype(np.int64)
    return x, ids[window:].astype(np.int64)


def window_arrays(seqs: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (window -> next) pair of each piece; no window spans two pieces."""
    pairs = [bigru_windows(s, window) for s in seqs]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


@torch.no_grad()
def window_scores(model, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> dict[str, float]:
    """Mean cross-entropy (nats) and accuracy of the BiGRU on windows, dropout off."""
    model.eval()
    loss, hits = 0.0, 0
    for s in range(0, len(x), batch):
        xb, yb = torch.from_numpy(x[s:s + batch]), torch.from_numpy(y[s:s + batch])
        logits = model(xb)[0]
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        hits += (logits.argmax(-1) == yb).sum().item()
    return {"loss": loss / max(len(x), 1), "acc": hits / max(len(x), 1), "n": int(len(x))}


@torch.no_grad()
def sequence_scores(model, seqs: list[np.ndarray], skip: int) -> dict[str, float]:
    """The stateful GRU on whole pieces, scored only on notes after the first `skip` of each
    (the notes a `skip`-wide window model predicts), so both models answer the same questions."""
    from musicgen.evaluate import piece_nll

    model.eval()
    nll, hit = [], []
    for s in seqs:
        a, b, _ = piece_nll(model, s, 1, "cpu")  # id 1 (START) opens every piece
        nll.append(a[skip:]), hit.append(b[skip:])
    nll, hit = np.concatenate(nll), np.concatenate(hit)
    return {"loss": float(nll.mean()), "acc": float(hit.mean()), "n": int(len(nll))}


class Run:
    """One row of the table: trains with Adam, early stopping on validation loss, a time cap."""

    def __init__(self, name: str, cfg: PaperConfig, model, score_train, score_val, score_test=None):
        self.name, self.cfg, self.model = name, cfg, model
        self.score_train, self.score_val, self.score_test = score_train, score_val, score_test
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.history: list[dict] = []

    def fit(self, batches) -> dict:
        """Train on `batches()` (an iterator per epoch) and return the best epoch's scores."""
        cfg, t_start = self.cfg, time.time()
        best, best_state, stale, why = math.inf, None, 0, "max epochs"
        for epoch in range(1, cfg.max_epochs + 1):
            self.model.train()
            losses, out_of_time = [], False
            for x, y in batches():
                _, loss, _ = self.model(x, y)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                losses.append(loss.item())
                out_of_time = time.time() - t_start > cfg.max_minutes * 60
                if out_of_time:
                    break
            tr, va = self.score_train(self.model), self.score_val(self.model)
            row = {"epoch": epoch, "train_loss_running": float(np.mean(losses)), "train_loss": tr["loss"],
                   "train_acc": tr["acc"], "val_loss": va["loss"], "val_acc": va["acc"],
                   "minutes": round((time.time() - t_start) / 60, 2)}
            self.history.append(row)
            print(f"{self.name} epoch {epoch}: train {tr['loss']:.3f} / {tr['acc']:.3f}  "
                  f"val {va['loss']:.3f} / {va['acc']:.3f}  ({row['minutes']:.1f} min)", flush=True)
            stale = 0 if va["loss"] < best else stale + 1
            if va["loss"] < best:
                best = va["loss"]
                best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            if stale >= cfg.patience:
                why = f"early stop (patience {cfg.patience})"
                break
            if out_of_time or time.time() - t_start > cfg.max_minutes * 60:
                why = f"time cap ({cfg.max_minutes:g} min)"
                break
        self.model.load_state_dict(best_state)
        best_row = min(self.history, key=lambda r: r["val_loss"])
        result = {"run": self.name, **{k: best_row[k] for k in ("epoch", "train_loss", "train_acc",
                                                                "val_loss", "val_acc")},
                  "epochs_run": len(self.history), "stopped": why,
                  "minutes": round((time.time() - t_start) / 60, 2), "params": count_params(self.model)}
        if self.score_test is not None:
            te = self.score_test(self.model)
            result["test_loss"], result["test_acc"] = te["loss"], te["acc"]
        return result

    def write_history(self, out: Path) -> None:
        """<out>/<name>.csv: one row per epoch."""
        with open(out / f"{self.name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.history[0]))
            w.writeheader()
            w.writerows(self.history)


def window_batches(x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator):
    """A fresh shuffled pass over the windows, as (x, y) tensors."""
    def epoch():
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch_size):
            idx = order[s:s + batch_size]
            yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
    return epoch


def chunk_batches(seqs: list[np.ndarray], seq_len: int, batch_size: int, rng: np.random.Generator):
    """Random chunks of whole pieces (START first), as many steps as one pass over their notes."""
    lengths = np.array([len(s) for s in seqs], dtype=np.float64)
    steps = max(1, int(lengths.sum()) // (batch_size * seq_len))

    def epoch():
        for _ in range(steps):
            out = np.zeros((batch_size, seq_len + 1), np.int64)  # pad (0) where a piece runs out
            for b, i in enumerate(rng.choice(len(seqs), batch_size, p=lengths / lengths.sum())):
                s = seqs[i]
                start = int(rng.integers(0, max(1, len(s) - seq_len)))
                chunk = s[start:start + seq_len + 1]
                out[b, :len(chunk)] = chunk
            t = torch.from_numpy(out)
            yield t[:, :-1], t[:, 1:]
    return epoch


def window_split(name: str, ids: dict[str, np.ndarray], part: dict[str, list[np.ndarray]],
                 cfg: PaperConfig, rng: np.random.Generator):
    """(train, val, test or None) window arrays: shuffled windows of all pieces, or by piece."""
    if name == "random":
        x, y = window_arrays(list(ids.values()), cfg.window)
        order = rng.permutation(len(x))
        n_val = int(round(len(x) * cfg.val_share))
        return (x[order[n_val:]], y[order[n_val:]]), (x[order[:n_val]], y[order[:n_val]]), None
    return (window_arrays(part["train"], cfg.window), window_arrays(part["val"], cfg.window),
            window_arrays(part["test"], cfg.window))


def lookup_table(x: np.ndarray, y: np.ndarray, context: int) -> dict[tuple, Counter]:
    """Every `context` notes -> next note seen inside the training windows (inputs and targets)."""
    table: dict[tuple, Counter] = {}
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        seq = xi + [yi]
        for s in range(len(seq) - context):
            table.setdefault(tuple(seq[s:s + context]), Counter())[seq[s + context]] += 1
    return table


def lookup_scores(table: dict[tuple, Counter], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy of answering each window with what followed its last notes in training (no learning),
    and the share of windows whose last notes were found at all."""
    context = len(next(iter(table)))
    hits = found = 0
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        seen = table.get(tuple(xi[-context:]))
        if seen:
            found += 1
            hits += seen.most_common(1)[0][0] == yi
    return {"acc": hits / max(len(x), 1), "found": found / max(len(x), 1)}


def run_table(cfg: PaperConfig) -> dict:
    """Train the rows named in cfg.runs and return the table with its settings."""
    torch.set_num_threads(cfg.threads)
    root = Path(cfg.data)
    if not root.is_dir():
        raise MusicgenError(f"no such folder: {root} (point --data at the Chopin MIDI folder)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seqs, split = load_sequences(root)
    vocab = {PAD: 0, START: 1}
    for name in sorted({i for s in seqs.values() for i in s}):  # over all pieces, as the paper
        vocab[name] = len(vocab)
    ids = {k: np.array([vocab[i] for i in s], np.int64) for k, s in seqs.items()}
    part = {s: [ids[k] for k in sorted(ids) if split[k] == s] for s in ("train", "val", "test")}
    info = {"pieces": {s: len(v) for s, v in part.items()}, "notes": int(sum(len(v) for v in ids.values())),
            "vocab": len(vocab), "split": {s: sorted(k for k in ids if split[k] == s) for s in part},
            "encode_seconds": round(time.time() - t0, 1)}
    print(f"{len(ids)} pieces, {info['notes']} note IDs, vocabulary {len(vocab)}; piece split "
          f"{info['pieces']}", flush=True)
    mcfg = dict(vocab_size=len(vocab), n_embd=cfg.n_embd, n_hidden=cfg.n_hidden, n_layer=cfg.n_layer,
                dropout=cfg.dropout, pad_id=0)
    rows = []
    for name in [r.strip() for r in cfg.runs.split(",") if r.strip()]:
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        if name in ("random", "piece"):
            (xtr, ytr), (xva, yva), te = window_split(name, ids, part, cfg, rng)
            sub = rng.choice(len(xtr), min(len(xtr), cfg.train_eval_windows), replace=False)
            run = Run(f"bigru-{name}", cfg, BiGRUWindow(ModelConfig(**mcfg), cfg.window),
                      lambda m, sub=sub, xtr=xtr, ytr=ytr: window_scores(m, xtr[sub], ytr[sub]),
                      lambda m, xva=xva, yva=yva: window_scores(m, xva, yva),
                      None if te is None else lambda m, te=te: window_scores(m, *te))
            row = run.fit(window_batches(xtr, ytr, cfg.batch_size, rng))
            row.update(split=name, train_windows=int(len(xtr)), val_windows=int(len(xva)))
            run.write_history(out)
        elif name == "gru":
            with_start = {s: [np.concatenate([[1], v]) for v in part[s]] for s in part}
            run = Run("gru-piece", cfg, GRULM(ModelConfig(**mcfg)),
                      lambda m: sequence_scores(m, part["train"], cfg.window),
                      lambda m: sequence_scores(m, part["val"], cfg.window),
                      lambda m: sequence_scores(m, part["test"], cfg.window))
            row = run.fit(chunk_batches(with_start["train"], cfg.gru_seq_len, cfg.batch_size, rng))
            row.update(split="piece")
            run.write_history(out)
        elif name == "lookup":
            for split_name in ("random", "piece"):
                rng = np.random.default_rng(cfg.seed)  # the same window split as the BiGRU row
                (xtr, ytr), (xva, yva), te = window_split(split_name, ids, part, cfg, rng)
                t1 = time.time()
                memory = lookup_table(xtr, ytr, cfg.window - 1)
                sub = rng.choice(len(xtr), min(len(xtr), cfg.train_eval_windows), replace=False)
                row = {"run": "lookup-39", "split": split_name, "stopped": "no training",
                       **{f"train_{k}": v for k, v in lookup_scores(memory, xtr[sub], ytr[sub]).items()},
                       **{f"val_{k}": v for k, v in lookup_scores(memory, xva, yva).items()}}
                if te is not None:
                    row.update({f"test_{k}": v for k, v in lookup_scores(memory, *te).items()})
                row["minutes"] = round((time.time() - t1) / 60, 2)
                rows.append(row)
            continue
        else:
            raise MusicgenError(f"unknown run {name!r}; choose from random, piece, gru, lookup")
        rows.append(row)
    table = {"config": asdict(cfg), "data": info, "paper": PAPER_TABLE1, "rows": rows,
             "minutes": round((time.time() - t0) / 60, 1), "torch_threads": torch.get_num_threads()}
    (out / "table.json").write_text(json.dumps(table, indent=1))
    (out / "table.md").write_text(format_table(table))
    return table


def format_table(table: dict) -> str:
    """A markdown table: the paper's row, then ours."""
    p = table["paper"]
    lines = ["| run | split | train acc | val acc | train loss | val loss | test acc | test loss "
             "| best epoch / run | minutes | stopped |", "|" + "---|" * 11,
             f"| paper (Table 1) | random windows | {p['train_acc']:.3f} | {p['val_acc']:.3f} | "
             f"{p['train_loss']:.3f} | {p['val_loss']:.3f} | - | - | - | - | - |"]
    for r in table["rows"]:
        cells = [_num(r.get(k)) for k in ("train_acc", "val_acc", "train_loss", "val_loss", "test_acc",
                                          "test_loss")]
        epochs = f"{r['epoch']} / {r['epochs_run']}" if "epoch" in r else "-"
        lines.append(f"| {r['run']} | {r['split']} | {' | '.join(cells)} | {epochs} | {r['minutes']:.1f} "
                     f"| {r['stopped']} |")
    return "\n".join(lines) + "\n"


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    """`python -m musicgen.paper --data DIR [--flags of PaperConfig]`."""
    from musicgen.config import add_dataclass_args, from_args

    parser = argparse.ArgumentParser(prog="python -m musicgen.paper", description=__doc__.split("\n")[0])
    add_dataclass_args(parser, PaperConfig)
    cfg = from_args(PaperConfig, parser.parse_args(argv))
    try:
        table = run_table(cfg)
    except MusicgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(table))
    print(f"wrote {Path(cfg.out) / 'table.json'} and table.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
