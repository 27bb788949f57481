"""Training the critic: random 10 s crops, class-balanced, early stopping on validation clips.

`musicgen critic train --data DIR [--out runs/classifier] [flags]`

Training draws random 10 s crops of the training pieces (a class uniformly, then a piece),
each with a level shift and, on semitone bands, a transposition; validation and test judge each
held-out piece on the same evenly spaced clips the inference API uses.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from musicgen.config import restore
from musicgen.critic.api import Classifier, save_classifier
from musicgen.critic.corpus import ClipSampler, PieceMel, load_pieces
from musicgen.critic.features import FeatureConfig
from musicgen.critic.model import ModelConfig, StyleGRU
from musicgen.critic.report import (
    evaluate_model,
    format_report,
    held_out_metrics,
    plot_confusion,
    pyplot,
    save_figure,
)
from musicgen.data import style_of
from musicgen.device import pick_device
from musicgen.errors import MusicgenError

ATTRIBUTION = "Bernd Krueger, piano-midi.de (CC BY-SA 3.0 DE)"

# options since removed, with the value that made them do nothing (config.restore drops them there):
# ema 0.99, masks 1-2 (SpecAugment) and transposed 2 (extra renders in other keys) were tried and
# were no better; the git tag v0.1-experiments (commit 592f34e) still has them
TRAIN_RETIRED = {"ema": 0.0, "masks": 0, "transposed": 0}
# a save from before key moves in training had none
TRAIN_BEFORE = {"pitch_shift": 0}


@dataclass
class TrainConfig:
    data: str = ""  # folder of MIDI files, composer = first folder level (piano-midi.de)
    out: str = "runs/classifier"  # run folder: best/ classifier, report.json, curves, confusion image
    cache: str = "runs/classifier-cache"  # log-mel of each rendered piece, reused across runs
    min_pieces: int = 15  # composers with fewer files are left out: too few to learn from and to test
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    steps_per_epoch: int = 50
    max_epochs: int = 100
    patience: int = 12  # epochs without a better validation clip accuracy before stopping
    # early stopping judges each validation piece on this many clips in this many keys either way:
    # cheaper than the test-time setting (features), and how the shipped members were chosen
    val_clips: int = 8
    val_key_shifts: int = 0
    max_cpu_minutes: float = 15.0  # CPU budget of the training loop (the machine is shared)
    gain_db: float = 6.0  # random level shift per training clip: recordings differ in loudness
    pitch_shift: int = 3  # semitone bands only: move each training crop up to this many keys up or down
    baseline_clips: int = 24  # evenly spaced clips per training piece for the logistic regression
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    workers: int = 1  # processes rendering uncached pieces (the first run over a corpus)
    refit: bool = False  # crossval only: then train again on train + val for the chosen epochs (and C)

    def __post_init__(self):
        for name in ("min_pieces", "batch_size", "steps_per_epoch", "max_epochs", "patience",
                     "baseline_clips", "workers", "val_clips"):
            if getattr(self, name) < 1:
                raise MusicgenError(f"--{name.replace('_', '-')} must be a positive whole number, "
                                    f"not {getattr(self, name)}")
        for name in ("lr", "max_cpu_minutes"):
            if not getattr(self, name) > 0:  # NaN too
                raise MusicgenError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        for name in ("weight_decay", "gain_db", "pitch_shift", "val_key_shifts"):
            if not getattr(self, name) >= 0:
                raise MusicgenError(f"--{name.replace('_', '-')} is 0 or more, not {getattr(self, name)}")
        pick_device(self.device)  # an unknown name is refused here, before any rendering


def load_train_config(saved: dict) -> TrainConfig:
    """TrainConfig of a saved critic or run: retired options at their neutral value are dropped,
    fields it predates take the value it meant."""
    return restore(TrainConfig, {**TRAIN_BEFORE, **saved}, TRAIN_RETIRED)


def check_recipe(tcfg: TrainConfig, fcfg: FeatureConfig) -> None:
    """Refuse training settings that do not fit the features (before anything is rendered)."""
    if tcfg.pitch_shift and fcfg.scale != "semitone":
        raise MusicgenError("--pitch-shift moves semitone bands; it needs --scale semitone --n-mels 88 "
                            "(or more), or pass --pitch-shift 0 with --scale mel")


def val_key(row: dict) -> tuple[float, float]:
    """How early stopping ranks epochs: validation clip accuracy, ties to the lower clip NLL."""
    return row["val_clip_accuracy"], -row["val_clip_nll"]


def fit(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, classes: list[str],
        train: list[PieceMel], val: list[PieceMel], epochs: int = 0) -> tuple[Classifier, list[dict], float]:
    """Train on random crops of `train`, keep the weights with the best validation clip accuracy;
    or, given `epochs`, train that many epochs without validation and keep the last weights.

    Returns the classifier, the per-epoch history and the CPU seconds the loop took.
    """
    check_recipe(tcfg, fcfg)
    device = pick_device(tcfg.device)
    torch.manual_seed(tcfg.seed)
    mcfg = dataclasses.replace(mcfg, n_mels=fcfg.n_mels, n_classes=len(classes))
    model = StyleGRU(mcfg)
    frames = np.concatenate([p.mel for p in train]).astype(np.float32)
    model.feat_mean.copy_(torch.from_numpy(frames.mean(axis=0)))
    model.feat_std.copy_(torch.from_numpy(frames.std(axis=0) + 1e-3))
    del frames
    sampler = ClipSampler(train, len(classes), fcfg.clip_frames, tcfg.gain_db, tcfg.seed, tcfg.pitch_shift)
    model.to(device)
    clf = Classifier(model, classes, fcfg, {})  # what is saved, judged with fcfg's test-time settings
    judge = Classifier(model, classes, fcfg.with_test_time(tcfg.val_clips, tcfg.val_key_shifts), {})
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    history, best, best_state, stale = [], (-1.0, 0.0), None, 0
    cpu_start = time.process_time()
    for epoch in range(1, (epochs or tcfg.max_epochs) + 1):
        model.train()
        losses = []
        for _ in range(tcfg.steps_per_epoch):
            x, y = sampler.batch(tcfg.batch_size)
            loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.detach())  # no .item() here: a GPU runs on while the next batch is cut
        model.eval()
        losses = torch.stack(losses).double().cpu().numpy()
        if epochs:
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses))})
            print(f"epoch {epoch}/{epochs}: train {np.mean(losses):.3f}", flush=True)
            continue
        v = evaluate_model(judge, val)
        cpu_min = (time.process_time() - cpu_start) / 60
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_clip_nll": v["clip_nll"],
               "val_clip_accuracy": v["clip_accuracy"], "val_piece_accuracy": v["piece_accuracy"],
               "cpu_minutes": round(cpu_min, 2)}
        history.append(row)
        key = val_key(row)
        improved = key > best
        if improved:
            best, best_state, stale = key, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        print(f"epoch {epoch}: train {row['train_loss']:.3f}  val clip acc {v['clip_accuracy']:.3f} "
              f"nll {v['clip_nll']:.3f}  piece acc {v['piece_accuracy']:.3f}  "
              f"({cpu_min:.1f} CPU min){'  *best*' if improved else ''}", flush=True)
        if stale >= tcfg.patience or cpu_min >= tcfg.max_cpu_minutes:
            print("stopping: " + ("CPU budget reached" if stale < tcfg.patience
                                  else f"no better validation accuracy for {stale} epochs"), flush=True)
            break
    if not epochs:
        model.load_state_dict(best_state)
    model.eval()
    return clf, history, time.process_time() - cpu_start


def train_classifier(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig) -> Path:
    """Render and cache the corpus, train with early stopping, evaluate on test; returns the run folder."""
    if not tcfg.data or not Path(tcfg.data).is_dir():
        raise MusicgenError(f"the corpus folder {tcfg.data or '(none)'} does not exist; pass --data DIR")
    check_recipe(tcfg, fcfg)
    out = Path(tcfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu0 = time.process_time()
    classes, pieces, skipped = load_pieces(tcfg.data, tcfg.min_pieces, fcfg, tcfg.cache, tcfg.workers)
    feature_cpu = time.process_time() - cpu0
    split = {s: [p for p in pieces if p.split == s] for s in ("train", "val", "test")}
    print(f"classes ({len(classes)}): {', '.join(classes)}; pieces train/val/test "
          f"{len(split['train'])}/{len(split['val'])}/{len(split['test'])}; "
          f"features in {feature_cpu / 60:.1f} CPU min", flush=True)
    clf, history, train_cpu = fit(tcfg, mcfg, fcfg, classes, split["train"], split["val"])
    write_curves(history, out / "curves.png")
    metrics = held_out_metrics(clf, split, tcfg.baseline_clips)
    meta = {"metrics": metrics, "history": history, "train": asdict(tcfg),
            "split": {s: sorted(p.path for p in ps) for s, ps in split.items()},
            "piece_counts": dict(Counter(style_of(p.path) for p in pieces)),
            "skipped_files": skipped, "attribution": ATTRIBUTION, "soundfont": "fluidr3-grand-piano.sf2",
            "cpu_minutes": {"features": round(feature_cpu / 60, 2), "training": round(train_cpu / 60, 2)},
            "params": sum(p.numel() for p in clf.model.parameters())}
    save_classifier(out / "best", clf.model, classes, fcfg, meta)
    plot_confusion(metrics["test"], classes, out / "confusion.png")
    (out / "report.json").write_text(json.dumps(meta, indent=1))
    print(format_report(metrics))
    return out


def write_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation accuracy per epoch."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["val_clip_nll"] for h in history], label="val clip loss")
    ax.plot(epochs, [h["val_clip_accuracy"] for h in history], label="val clip accuracy")
    ax.plot(epochs, [h["val_piece_accuracy"] for h in history], label="val piece accuracy")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
