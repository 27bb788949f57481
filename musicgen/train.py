"""Training: Adam, clipping, cross-entropy, early stopping on validation loss, resumable.

Runs on CPU or CUDA (bf16 autocast there); several GPUs through `torchrun` (DDP).
Every run writes its config, split, loss curve (CSV + PNG) and best/last checkpoints.
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
from musicgen.device import pick_device
from musicgen.errors import MusicgenError
from musicgen.evaluate import split_metrics
from musicgen.model import GRULM, ModelConfig, count_params

ATTRIBUTION = "Bernd Krueger, piano-midi.de (CC BY-SA 3.0 DE)"


@dataclass
class TrainConfig:
    data: str = ""  # folder of MIDI files, composer = first folder level; empty: music21's corpus
    out: str = "runs/latest"  # run folder: checkpoints, curves, split, config
    seq_len: int = 256  # tokens per training window (truncated backprop length)
    batch_size: int = 32  # windows per step (per GPU under torchrun)
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay
    grad_clip: float = 1.0  # max gradient norm
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    patience: int = 10  # epochs without a better validation loss before stopping
    lr_patience: int = 2  # halve the learning rate after this many epochs without improvement; 0: never
    steps_per_epoch: int = 0  # 0: one pass over the training tokens per epoch
    max_minutes: float = 0.0  # wall-clock budget; 0: none
    transpose: int = 5  # augment by random shifts of up to this many semitones
    style_dropout: float = 0.1  # share of windows opened by Style_any, so "any style" works
    seed: int = 1337  # seeds weights and window order
    device: str = "auto"  # auto: CUDA when present, else CPU
    resume: bool = False  # continue from OUT/last
    half: bool = True  # store weights as fp16 (half the size; sampling upcasts)
    threads: int = 1  # CPU threads for torch; 0: its default. 1 wins on a busy 2-core machine (shipped)

    def __post_init__(self):
        """Checked before the corpus is read, so a bad flag costs nothing."""
        pick_device(self.device)
        if min(self.seq_len, self.batch_size, self.epochs) < 1 or not self.lr > 0:
            raise MusicgenError("--seq-len, --batch-size and --epochs must be at least 1, --lr above 0")
        if min(self.patience, self.lr_patience, self.steps_per_epoch, self.threads, self.transpose) < 0 \
                or not self.max_minutes >= 0 or not self.grad_clip > 0 or not self.weight_decay >= 0:
            raise MusicgenError("--patience, --lr-patience, --steps-per-epoch, --threads, --transpose and "
                                "--max-minutes must be at least 0, --grad-clip above 0")
        if not 0 <= self.style_dropout <= 1:
            raise MusicgenError(f"--style-dropout is a share in [0, 1], not {self.style_dropout}")


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
    root = Path(tcfg.data) if tcfg.data else corpus_data.fallback_corpus()
    resume_dir = out / "last"
    tokenizer = tk.load_tokenizer(resume_dir / "tokenizer.json") if tcfg.resume else None
    corpus, tokenizer = corpus_data.load_corpus(root, tokenizer)
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
    sampler = corpus_data.WindowSampler(train_pieces, tokenizer, seq_len, tcfg.transpose,
                                        tcfg.style_dropout, seed=tcfg.seed + rank + len(history))
    steps = tcfg.steps_per_epoch or max(1, sampler.tokens // (tcfg.batch_size * seq_len))
    use_amp = device.startswith("cuda")
    meta = {"train": asdict(tcfg), "data_root": str(root), "attribution": ATTRIBUTION
            if "piano-midi" in str(root) else "music21 corpus", "split": corpus.split_table(),
            "skipped_files": corpus.bad, "params": count_params(raw_model)}
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "split.json").write_text(json.dumps(corpus.split_table(), indent=1))
        (out / "run.json").write_text(json.dumps({"train": asdict(tcfg), "model": asdict(mcfg)}, indent=2))
        print(f"{len(train_pieces)} train / {len(val_pieces)} val / {len(corpus.split('test'))} test "
              f"pieces, {sampler.tokens} train tokens, {len(corpus.bad)} files skipped; "
              f"{count_params(raw_model) / 1e6:.2f}M params on {device}, {steps} steps/epoch")
    best = min((h["val_loss"] for h in history), default=float("inf"))
    t_start, stale = time.time(), 0
    for epoch in range(len(history) + 1, tcfg.epochs + 1):
        model.train()
        bar = _progress(steps, f"epoch {epoch}", main_proc)
        t0, losses = time.time(), []
        for step in range(steps):
            x, y = sampler.batch(tcfg.batch_size)
            x, y = x.to(device), y.to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext():
                _, loss, _ = model(x, y)
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
