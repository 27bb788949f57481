"""Training: Adam, clipping, cross-entropy, early stopping on validation loss, resumable.

Runs on CPU or CUDA (bf16 autocast there); several GPUs through `torchrun` (DDP).
Every run writes its config, split, loss curve (CSV + PNG) and best/last checkpoints.
Batches are random windows of the training pieces, or (--carry-state) consecutive windows of
whole pieces with the GRU's hidden state carried from one step to the next.
"""

from __future__ import annotations

import csv
import json
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from musicgen import data as corpus_data
from musicgen import tokenizer as tk
from musicgen.checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from musicgen.credits import data_credits
from musicgen.device import pick_device
from musicgen.errors import MusicgenError
from musicgen.evaluate import split_metrics
from musicgen.model import GRULM, ModelConfig, count_params


@dataclass
class TrainConfig:
    data: tuple[str, ...] = ()  # corpus folders (composer = first folder level); none: music21's corpus
    out: str = "runs/latest"  # run folder: checkpoints, curves, split, config
    seq_len: int = 256  # tokens per training window (truncated backprop length)
    batch_size: int = 32  # windows per step (per GPU under torchrun)
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay
    grad_clip: float = 1.0  # max gradient norm
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    patience: int = 10  # epochs without a better validation loss before stopping
    lr_patience: int = 2  # halve the learning rate after this many epochs without improvement; 0: never
    steps_per_epoch: int = 400  # 0: one pass over the training tokens per epoch (9.2 M for all five
    # corpora: 45 minutes on one core); 400 steps of 32 x 256 tokens is about 15
    max_minutes: float = 0.0  # wall-clock budget; 0: none
    transpose: int = 5  # augment by random shifts of up to this many semitones
    style_dropout: float = 0.1  # share of windows opened by Style_any, so "any style" works
    seed: int = 1337  # seeds weights and window order
    device: str = "auto"  # auto: CUDA when present, else CPU
    resume: bool = False  # continue from OUT/last
    half: bool = True  # store weights as fp16 (half the size; sampling upcasts)
    threads: int = 1  # CPU threads for torch; 0: its default. 1 wins on a busy 2-core machine (shipped)
    # pop909 is 50 of the 92 training hours (51% of the tokens) but one style of 79; at 0.25 it is 13 of
    # 54 hours drawn (20% of the tokens): still the largest style, no longer the majority
    corpus_weights: tuple[str, ...] = ("pop909=0.25",)  # CORPUS=W: its windows drawn W times as often
    carry_state: bool = True  # windows follow each other through whole pieces, hidden state carried

    def __post_init__(self):
        """Checked before the corpus is read, so a bad flag costs nothing."""
        pick_device(self.device)
        self.data = (self.data,) if isinstance(self.data, str) and self.data else tuple(self.data or ())
        self.corpus_weights = tuple(self.corpus_weights)
        if min(self.seq_len, self.batch_size, self.epochs) < 1 or not self.lr > 0:
            raise MusicgenError("--seq-len, --batch-size and --epochs must be at least 1, --lr above 0")
        if min(self.patience, self.lr_patience, self.steps_per_epoch, self.threads, self.transpose) < 0 \
                or not self.max_minutes >= 0 or not self.grad_clip > 0 or not self.weight_decay >= 0:
            raise MusicgenError("--patience, --lr-patience, --steps-per-epoch, --threads, --transpose and "
                                "--max-minutes must be at least 0, --grad-clip above 0")
        if not 0 <= self.style_dropout <= 1:
            raise MusicgenError(f"--style-dropout is a share in [0, 1], not {self.style_dropout}")
        self.weights()

    def weights(self) -> dict[str, float]:
        """{corpus folder name: draw weight} from --corpus-weights (a corpus not named weighs 1)."""
        out = {}
        for item in self.corpus_weights:
            name, _, value = item.rpartition("=")
            try:
                out[name] = float(value)
            except ValueError:
                out[name] = float("nan")
            if not name or not out[name] >= 0:
                raise MusicgenError(f"--corpus-weights takes CORPUS=WEIGHT with a weight of 0 or more, "
                                    f"not {item!r}")
        return out


def train(tcfg: TrainConfig, mcfg: ModelConfig) -> Path:
    """Train until early stopping (or the budget) and return the run folder."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(tcfg.device)
    if ddp:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
    main_proc = rank == 0
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    out = Path(tcfg.out)
    roots = [Path(r) for r in tcfg.data] or [corpus_data.fallback_corpus()]
    resume_dir = out / "last"
    tokenizer = tk.load_tokenizer(resume_dir / "tokenizer.json") if tcfg.resume else None
    corpus, tokenizer = corpus_data.load_corpus(roots, tokenizer)
    train_pieces, val_pieces = corpus.split("train"), corpus.split("val")
    mcfg.vocab_size, mcfg.pad_id = len(tokenizer.vocab), tokenizer.pad_token_id
    model = GRULM(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    history: list[dict] = []
    if tcfg.resume:
        model, _, old = load_checkpoint(resume_dir, device)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        load_optimizer_state(resume_dir, opt)
        for group in opt.param_groups:  # a resumed run may ask for a new learning rate
            group["lr"] = tcfg.lr
        history = old.get("history", [])
    raw_model = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    seq_len = tcfg.seq_len
    kind = StreamSampler if tcfg.carry_state else WindowSampler
    sampler = kind(train_pieces, tokenizer, seq_len, tcfg.transpose, tcfg.style_dropout,
                   seed=tcfg.seed + rank + len(history), weights=tcfg.weights())
    steps = tcfg.steps_per_epoch or max(1, sampler.tokens // (tcfg.batch_size * seq_len))
    use_amp = device.startswith("cuda")
    meta = {"train": asdict(tcfg), "data_roots": [str(r) for r in roots], **data_credits(corpus),
            "split": corpus.split_table(), "skipped_files": corpus.bad, "params": count_params(raw_model)}
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "split.json").write_text(json.dumps(corpus.split_table(), indent=1))
        (out / "run.json").write_text(json.dumps({"train": asdict(tcfg), "model": asdict(mcfg)}, indent=2))
        print(f"{len(train_pieces)} train / {len(val_pieces)} val / {len(corpus.split('test'))} test "
              f"pieces, {sampler.tokens} train tokens (drawn: {sampler.describe()}), {len(corpus.bad)} "
              f"files skipped; "
              f"{count_params(raw_model) / 1e6:.2f}M params on {device}, {steps} steps/epoch")
    best = min((row["val_loss"] for row in history), default=float("inf"))
    t_start, stale, h = time.time(), 0, None
    for epoch in range(len(history) + 1, tcfg.epochs + 1):
        model.train()
        bar = _progress(steps, f"epoch {epoch}", main_proc)
        t0, losses = time.time(), []
        for step in range(steps):
            x, y, fresh = sampler.batch(tcfg.batch_size)
            x, y = x.to(device), y.to(device)
            if h is not None:  # carried from the last step, without its graph; zero for a new piece
                h = h.detach().masked_fill(fresh.to(device)[None, :, None], 0.0)
            with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext():
                _, loss, h = model(x, y, h=h)
            if not tcfg.carry_state:
                h = None
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
            losses.append(loss.item())
            tok_s = (step + 1) * x.numel() / (time.time() - t0)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", tok_s=f"{tok_s:,.0f}")
            bar.update()
            if tcfg.max_minutes and time.time() - t_start > tcfg.max_minutes * 60:
                break
        bar.close()
        val = split_metrics(raw_model, val_pieces, tokenizer, device)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val["nll"],
               "val_top1": val["top1"], "seconds": round(time.time() - t0, 1),
               "tok_s": round(len(losses) * tcfg.batch_size * seq_len / (time.time() - t0))}
        history.append(row)
        improved = val["nll"] < best
        stale = 0 if improved else stale + 1
        best = min(best, val["nll"])
        if tcfg.lr_patience and stale and stale % tcfg.lr_patience == 0:
            for group in opt.param_groups:
                group["lr"] /= 2
        row["lr"] = opt.param_groups[0]["lr"]
        if main_proc:
            print(f"epoch {epoch}: train {row['train_loss']:.4f}  val {val['nll']:.4f} "
                  f"(ppl {val['ppl']:.2f}, top1 {val['top1']:.3f}){'  *best*' if improved else ''}")
            meta_now = {**meta, "history": history, "val": val, "epoch": epoch}
            save_checkpoint(out / "last", raw_model, tokenizer, meta_now, opt, half=False)
            if improved:
                save_checkpoint(out / "best", raw_model, tokenizer, meta_now, half=tcfg.half)
            write_curves(history, out)
        out_of_time = tcfg.max_minutes and time.time() - t_start > tcfg.max_minutes * 60
        if stale >= tcfg.patience or out_of_time:
            if main_proc:
                why = "time budget reached" if out_of_time else f"no improvement for {stale} epochs"
                print(f"stopping: {why}; best val loss {best:.4f}")
            break
    if ddp:
        torch.distributed.destroy_process_group()
    return out


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True, mininterval=1.0)


def write_curves(history: list[dict], out: Path) -> None:
    """loss.csv and loss.png in the run folder."""
    with open(out / "loss.csv", "w", newline="") as f:
        names = list(dict.fromkeys(k for row in history for k in row))  # resumed runs may add columns
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        w.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation (held-out pieces)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png")
    plt.close(fig)


class WindowSampler:
    """Random training windows: style token + a slice of one piece, transposed at random.

    Windows are drawn in proportion to piece length times its corpus's weight; a window is
    `seq_len + 1` tokens so inputs and shifted targets both have seq_len.
    """

    def __init__(self, pieces: list[corpus_data.Piece], tokenizer, seq_len: int, transpose: int = 5,
                 style_dropout: float = 0.1, seed: int = 0, weights: dict[str, float] | None = None):
        self.pieces, self.seq_len = pieces, seq_len
        self.style_ids = {p.style: tokenizer.vocab[tk.style_token(p.style)] for p in pieces}
        self.any_id = tokenizer.vocab[tk.style_token(tk.ANY_STYLE)]
        self.pad_id = tokenizer.pad_token_id
        self.transpose, self.style_dropout = transpose, style_dropout
        lengths = np.array([len(p.ids) for p in pieces], dtype=np.float64)
        w = np.array([(weights or {}).get(p.corpus, 1.0) for p in pieces])
        if not (lengths * w).sum() > 0:
            raise MusicgenError("--corpus-weights leave no training piece to draw from")
        self.token_share = lengths * w / (lengths * w).sum()  # of the tokens trained on, per piece
        self.weights = self._draw_weights(lengths, w)
        self.rng = np.random.default_rng(seed)
        self.shift_tables = _pitch_shift_tables(tokenizer, transpose)

    def _draw_weights(self, lengths: np.ndarray, w: np.ndarray) -> np.ndarray:
        return lengths * w / (lengths * w).sum()  # a window anywhere: longer pieces, more windows

    @property
    def tokens(self) -> int:
        """Training tokens in one pass over the pieces."""
        return int(sum(len(p.ids) for p in self.pieces))

    def describe(self) -> str:
        """Each corpus's share of the tokens trained on, as weighted."""
        shares: dict[str, float] = {}
        for p, s in zip(self.pieces, self.token_share):
            shares[p.corpus or "corpus"] = shares.get(p.corpus or "corpus", 0.0) + s
        return ", ".join(f"{c} {s:.0%}" for c, s in sorted(shares.items()))

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x, y: (B, seq_len) int64, y is x shifted by one, pad where the piece ran out; fresh (B,):
        True for every row, as no window continues the one before."""
        out = np.full((batch_size, self.seq_len + 1), self.pad_id, dtype=np.int64)
        for b, i in enumerate(self.rng.choice(len(self.pieces), batch_size, p=self.weights)):
            piece = self.pieces[i]
            n = len(piece.ids)
            start = int(self.rng.integers(0, max(1, n - self.seq_len + 1)))
            chunk = piece.ids[start:start + self.seq_len].astype(np.int64)
            out[b, 0] = self._style(piece)
            out[b, 1:1 + len(chunk)] = self._transpose(chunk) if self.transpose else chunk
        t = torch.from_numpy(out)
        return t[:, :-1], t[:, 1:], torch.ones(batch_size, dtype=torch.bool)

    def _style(self, piece: corpus_data.Piece) -> int:
        return self.any_id if self.rng.random() < self.style_dropout else self.style_ids[piece.style]

    def _transpose(self, chunk: np.ndarray) -> np.ndarray:
        for _ in range(4):  # a shift that pushes a note off the keyboard is tried again
            k = int(self.rng.integers(-self.transpose, self.transpose + 1))
            table = self.shift_tables[k]
            moved = table[chunk]
            if (moved >= 0).all():
                return moved
        return chunk


class StreamSampler(WindowSampler):
    """Consecutive windows through whole pieces: row b of a batch goes on where row b of the last
    batch stopped, so the GRU's hidden state can be carried (detached) between steps, as in
    generation, where it carries the whole seed: truncated backprop through time.

    A row reads its piece from the style token to the end, transposed once, then draws the next
    piece. Pieces are drawn in proportion to their corpus's weight alone: each is read whole, so
    each corpus's share of the tokens is still its length times its weight, as for WindowSampler.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows: list[tuple[np.ndarray, int]] = []  # per row: (the piece's stream, next start)

    def _draw_weights(self, lengths: np.ndarray, w: np.ndarray) -> np.ndarray:
        return w / w.sum()

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x, y as WindowSampler's; fresh (B,): True where the row starts a new piece (zero its state)."""
        out = np.full((batch_size, self.seq_len + 1), self.pad_id, dtype=np.int64)
        fresh = np.zeros(batch_size, dtype=bool)
        self.rows = self.rows[:batch_size]
        for b in range(batch_size):
            if b == len(self.rows) or self.rows[b][1] >= len(self.rows[b][0]) - 1:
                piece = self.pieces[int(self.rng.choice(len(self.pieces), p=self.weights))]
                ids = piece.ids.astype(np.int64)
                self.rows[b:b + 1] = [(np.concatenate([[self._style(piece)], self._transpose(ids)
                                                       if self.transpose else ids]), 0)]
                fresh[b] = True
            stream, start = self.rows[b]
            chunk = stream[start:start + self.seq_len + 1]
            out[b, :len(chunk)] = chunk
            self.rows[b] = (stream, start + self.seq_len)
        t = torch.from_numpy(out)
        return t[:, :-1], t[:, 1:], torch.from_numpy(fresh)


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
