"""The audio classifier's offline half: corpus -> rendered log-mel (cached) -> training -> held-out report.

`python -m musicgen.classify_data train --data DIR [--out runs/classifier] [flags]`
`python -m musicgen.classify_data fidelity [--checkpoint assets/model] [--n 8] [--json OUT] [--data DIR]`
`python -m musicgen.classify_data crossval --data DIR [--folds 5] [--out DIR]` (classify_cv.py)
`python -m musicgen.classify_data retest --out DIR --max-clips N [--key-shifts K] [--classifier DIR]`

Every piece of a composer with at least `min_pieces` files is rendered whole with the shipped
piano soundfont at 16 kHz and turned into log band-power frames (mel or per-key bands) once
(runs/classifier-cache/).
Training draws random 10 s crops, class-balanced; validation and test judge each held-out
piece on the same evenly spaced clips the inference API uses. The split is the generator's
(`data.assign_splits` over every file of the corpus), so held-out pieces are the same.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from musicgen.classify import (
    AMIN,
    ASSET_DIR,
    FLOOR_DB,
    Classifier,
    FeatureConfig,
    ModelConfig,
    StyleEnsemble,
    StyleGRU,
    classify_score,
    clip_starts,
    load_classifier,
    log_mel,
    save_classifier,
    shift_keys,
)
from musicgen.data import assign_splits, find_midi_files, style_of
from musicgen.errors import MusicgenError

log = logging.getLogger(__name__)

ATTRIBUTION = "Bernd Krueger, piano-midi.de (CC BY-SA 3.0 DE)"


@dataclass
class TrainConfig:
    data: str = ""  # folder of MIDI files, composer = first folder level (piano-midi.de)
    out: str = "runs/classifier"  # run folder: best/ classifier, report.json, curves, confusion image
    cache: str = "runs/classifier-cache"  # log-mel of each rendered piece, reused across runs
    min_pieces: int = 15  # composers with fewer files are left out: too few to learn from and to test
    batch_size: int = 32
    lr: float = 2e-3
    ema: float = 0.0  # >0: evaluate and keep a running average of the weights (tried 0.99: no better)
    weight_decay: float = 1e-4
    steps_per_epoch: int = 50
    max_epochs: int = 100
    patience: int = 12  # epochs without a better validation clip accuracy before stopping
    max_cpu_minutes: float = 15.0  # CPU budget of the training loop (the machine is shared)
    gain_db: float = 6.0  # random level shift per training clip: recordings differ in loudness
    masks: int = 0  # SpecAugment: band masks and time masks per training clip (tried 1-2: no better)
    transposed: int = 0  # extra renders per training piece, shifted 1..5 semitones (tried 2: no better)
    pitch_shift: int = 0  # semitone bands only: move each training crop up to this many keys up or down
    baseline_clips: int = 24  # evenly spaced clips per training piece for the logistic regression
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    workers: int = 1  # processes rendering uncached pieces (the first run over a corpus)
    refit: bool = False  # crossval only: then train again on train + val for the chosen epochs (and C)


@dataclass
class PieceMel:
    path: str  # relative to the corpus root: the key of the split
    label: int  # index into the classes
    split: str  # "train", "val" or "test"
    mel: np.ndarray  # (frames, n_mels) float16 log-mel in dB of the whole rendered piece
    transposed: list[np.ndarray] = field(default_factory=list)  # the same, rendered in other keys


# ---- data ------------------------------------------------------------------------------------

def composer_classes(rels: list[str], min_pieces: int) -> list[str]:
    """Composers (first folder level) with at least min_pieces files, sorted."""
    counts = Counter(style_of(r) for r in rels)
    return sorted(s for s, n in counts.items() if n >= min_pieces)


def _feature_key(fcfg: FeatureConfig) -> bytes:
    from musicgen.render.audio import default_soundfont

    sf = default_soundfont()
    keep = {k: v for k, v in asdict(fcfg).items() if k not in ("clip_sec", "max_clips", "key_shifts")}
    return json.dumps([keep, sf.name, sf.stat().st_size, AMIN], sort_keys=True).encode()


def cache_path(path: Path, fcfg: FeatureConfig, cache_dir: Path, shift: int = 0) -> Path:
    """Where piece_mel keeps a render: named by file content, shift and feature settings."""
    key = hashlib.sha1(path.read_bytes() + _feature_key(fcfg) + f"shift={shift}".encode()).hexdigest()[:20]
    return cache_dir / f"{key}.npy"


def piece_mel(path: Path, fcfg: FeatureConfig, cache_dir: Path, shift: int = 0) -> np.ndarray:
    """(frames, n_mels) float16 log-mel of a MIDI file rendered whole, transposed by shift semitones,
    cached (cache_path)."""
    import symusic

    from musicgen.render.audio import render_audio

    cached = cache_path(path, fcfg, cache_dir, shift)
    if cached.is_file():
        return np.load(cached)
    score = symusic.Score(str(path))
    if shift:
        score = score.shift_pitch(shift)
    audio = render_audio(score, sample_rate=fcfg.sample_rate)  # (n, 2), the renderer's loudness
    mel = log_mel(audio.mean(axis=1), fcfg).astype(np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")  # worker processes never share one
    np.save(tmp, mel)
    os.replace(tmp, cached)  # a killed run never leaves half a file under the real name
    return mel


def shifts_for(rel: str, n: int) -> list[int]:
    """n distinct transpositions in -5..+6 semitones (not 0), fixed by the path so caches are reused."""
    rng = np.random.default_rng(int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16))
    return [int(k) for k in rng.choice([k for k in range(-5, 7) if k], size=n, replace=False)]


def _cache_one(path: Path, fcfg: FeatureConfig, cache_dir: Path, shift: int) -> None:
    torch.set_num_threads(1)  # one core per worker process
    try:
        piece_mel(path, fcfg, cache_dir, shift)
    except Exception:  # reported when the main process loads the piece again
        pass


def render_in_parallel(jobs: list[tuple[Path, int]], fcfg: FeatureConfig, cache_dir: Path,
                       workers: int) -> None:
    """Fill the cache with the (file, shift) renders it lacks, in `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    missing = {}  # one job per cache file: identical files render once
    for f, k in jobs:
        target = cache_path(f, fcfg, cache_dir, k)
        if not target.is_file():
            missing.setdefault(target, (f, k))
    if not missing:
        return
    # spawn, not fork: a forked copy of a process that has run torch can hang in its thread pool
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for done in [pool.submit(_cache_one, f, fcfg, cache_dir, k) for f, k in missing.values()]:
            done.result()


def load_pieces(root: str | Path, min_pieces: int, fcfg: FeatureConfig, cache_dir: str | Path,
                transposed: int = 0, workers: int = 1
                ) -> tuple[list[str], list[PieceMel], list[tuple[str, str]]]:
    """(classes, pieces of those classes with their split and log-mel, skipped (path, reason)).

    Training pieces also get `transposed` renders in other keys (augmentation); held-out ones never.
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

    def shifts(rel):
        return shifts_for(rel, transposed) if splits[rel] == "train" else []

    if workers > 1:
        render_in_parallel([(f, k) for f, r in todo for k in [0, *shifts(r)]], fcfg, Path(cache_dir), workers)
    for i, (f, rel) in enumerate(todo):
        try:
            mel = piece_mel(f, fcfg, Path(cache_dir))
            others = [piece_mel(f, fcfg, Path(cache_dir), k) for k in shifts(rel)]
        except Exception as e:  # one bad file never aborts a run
            skipped.append((rel, str(e)))
            log.warning("skipped %s: %s", rel, e)
            continue
        pieces.append(PieceMel(rel, classes.index(style_of(rel)), splits[rel], mel, others))
        if (i + 1) % 25 == 0:
            print(f"  features of {i + 1}/{len(todo)} pieces", flush=True)
    return classes, pieces, skipped


def crop(mel: np.ndarray, start: int, frames: int) -> np.ndarray:
    """mel[start:start+frames] as float32, padded with silence where the piece is shorter."""
    out = mel[start:start + frames].astype(np.float32)
    if len(out) < frames:
        out = np.pad(out, ((0, frames - len(out)), (0, 0)), constant_values=FLOOR_DB)
    return out


MASK_BANDS, MASK_FRAMES = 8, 40  # widest SpecAugment masks: 1/8 of the bands, ~1 s


class ClipSampler:
    """Random training crops: a class uniformly, a piece of it uniformly, a key and a start uniformly."""

    def __init__(self, pieces: list[PieceMel], n_classes: int, frames: int, gain_db: float,
                 masks: int, band_mean: np.ndarray, seed: int, pitch_shift: int = 0):
        self.by_class = [[p for p in pieces if p.label == c] for c in range(n_classes)]
        self.by_class = [ps for ps in self.by_class if ps]
        self.frames, self.gain_db, self.masks, self.pitch_shift = frames, gain_db, masks, pitch_shift
        self.band_mean = band_mean.astype(np.float32)  # masked cells get it: zero once standardised
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, frames, n_mels) float32 dB, y (B,) class indices."""
        xs, ys = [], []
        rng = self.rng
        for _ in range(size):
            group = self.by_class[rng.integers(len(self.by_class))]
            p = group[rng.integers(len(group))]
            versions = [p.mel] + p.transposed
            mel = versions[rng.integers(len(versions))]
            start = int(rng.integers(0, max(1, len(mel) - self.frames + 1)))
            x = np.maximum(crop(mel, start, self.frames) + rng.uniform(-self.gain_db, self.gain_db), FLOOR_DB)
            if self.pitch_shift:
                x = shift_keys(x, int(rng.integers(-self.pitch_shift, self.pitch_shift + 1)))
            for _ in range(self.masks):
                b, w = int(rng.integers(0, x.shape[1])), int(rng.integers(0, MASK_BANDS + 1))
                x[:, b:b + w] = self.band_mean[b:b + w]
                t, w = int(rng.integers(0, len(x))), int(rng.integers(0, MASK_FRAMES + 1))
                x[t:t + w] = self.band_mean
            xs.append(x)
            ys.append(p.label)
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys)


# ---- evaluation ------------------------------------------------------------------------------

def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n: honest error bars for a few dozen pieces."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score_predictions(classes: list[str], pieces: list[PieceMel], clip_probs: list[np.ndarray]) -> dict:
    """Clip and piece accuracy (piece = mean of its clips' probabilities), confusions and per piece."""
    C = len(classes)
    clip_conf, piece_conf = np.zeros((C, C), int), np.zeros((C, C), int)
    per_piece, nll = [], []
    for p, probs in zip(pieces, clip_probs, strict=True):
        for row in probs:
            clip_conf[p.label, int(row.argmax())] += 1
            nll.append(-math.log(max(float(row[p.label]), 1e-12)))
        mean = probs.mean(axis=0)
        top = int(mean.argmax())
        piece_conf[p.label, top] += 1
        per_piece.append({"path": p.path, "true": classes[p.label], "top": classes[top],
                          "p_true": round(float(mean[p.label]), 4), "clips": len(probs)})
    k, n = int(np.trace(piece_conf)), int(piece_conf.sum())
    recall = [piece_conf[c, c] / piece_conf[c].sum() for c in range(C) if piece_conf[c].sum()]
    return {"pieces": n, "clips": int(clip_conf.sum()),
            "clip_accuracy": float(np.trace(clip_conf) / max(1, clip_conf.sum())),
            "piece_accuracy": k / max(1, n), "piece_accuracy_ci95": [round(x, 3) for x in wilson(k, n)],
            "piece_balanced_accuracy": float(np.mean(recall)) if recall else 0.0,
            "clip_nll": float(np.mean(nll)) if nll else 0.0,
            "piece_confusion": piece_conf.tolist(), "clip_confusion": clip_conf.tolist(),
            "per_piece": per_piece}


def evaluate_model(clf: Classifier, pieces: list[PieceMel]) -> dict:
    """score_predictions of the GRU on the API's clips of each piece."""
    probs = [clf.clip_probabilities(p.mel) for p in pieces]  # it takes float32 copies of the clips alone
    return score_predictions(clf.classes, pieces, probs)


def clip_stats(mel: np.ndarray, frames: int, max_clips: int) -> np.ndarray:
    """(n_clips, 2 * n_mels): mean and std of each band over each evenly spaced clip."""
    clips = [crop(mel, s, frames) for s in clip_starts(len(mel), frames, max_clips)]
    return np.stack([np.concatenate([c.mean(axis=0), c.std(axis=0)]) for c in clips])


def baseline(classes: list[str], train: list[PieceMel], val: list[PieceMel], test: list[PieceMel],
             fcfg: FeatureConfig, train_clips: int, refit: bool = False) -> dict:
    """Logistic regression on per-clip mean+std log-mel; C picked on validation clips (then, with
    refit, trained again on training and validation clips); scored on test."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:
        raise MusicgenError("the baseline needs scikit-learn: pip install scikit-learn") from err

    def feats(pieces, max_clips):
        xs = [clip_stats(p.mel, fcfg.clip_frames, max_clips) for p in pieces]
        labels = [[p.label] * len(x) for p, x in zip(pieces, xs, strict=True)]
        return xs, np.concatenate(xs), np.concatenate(labels)

    _, x_train, y_train = feats(train, train_clips)
    val_x, x_val, y_val = feats(val, fcfg.max_clips)
    best = None
    for c in (0.001, 0.01, 0.1, 1.0):
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
        model = make_pipeline(StandardScaler(), lr)
        model.fit(x_train, y_train)
        acc = float((model.predict(x_val) == y_val).mean())
        if best is None or acc > best[0]:
            best = (acc, c, model)
    _, c, model = best

    def proba(xs):  # predict_proba over the classes, in label order even if a class is absent
        return [model.predict_proba(x) for x in xs]

    val_report = {k: v for k, v in score_predictions(classes, val, proba(val_x)).items()
                  if k in ("clip_accuracy", "piece_accuracy")}
    if refit:
        _, x_more, y_more = feats(val, train_clips)
        model.fit(np.concatenate([x_train, x_more]), np.concatenate([y_train, y_more]))
    test_x, _, _ = feats(test, fcfg.max_clips)
    report = score_predictions(classes, test, proba(test_x))
    report["val"], report["C"] = val_report, c
    return report


def chance(classes: list[str], train: list[PieceMel], test: list[PieceMel]) -> dict:
    """Uniform guessing and always answering the commonest training class."""
    majority = Counter(p.label for p in train).most_common(1)[0][0]
    return {"uniform": 1 / len(classes), "majority_class": classes[majority],
            "majority_piece_accuracy": sum(p.label == majority for p in test) / len(test)}


def plot_confusion(report: dict, classes: list[str], path: Path) -> None:
    """Test confusion matrices (pieces and clips) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), dpi=100)
    for ax, key, what in ((axes[0], "piece_confusion", "pieces"), (axes[1], "clip_confusion", "10 s clips")):
        m = np.array(report[key])
        share = m / np.maximum(1, m.sum(axis=1, keepdims=True))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true composer")
        acc = report["piece_accuracy"] if what == "pieces" else report["clip_accuracy"]
        ax.set_title(f"held-out test {what}: accuracy {acc:.0%}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["val_clip_nll"] for h in history], label="val clip loss")
    ax.plot(epochs, [h["val_clip_accuracy"] for h in history], label="val clip accuracy")
    ax.plot(epochs, [h["val_piece_accuracy"] for h in history], label="val piece accuracy")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- training --------------------------------------------------------------------------------

def val_key(row: dict) -> tuple[float, float]:
    """How early stopping ranks epochs: validation clip accuracy, ties to the lower clip NLL."""
    return row["val_clip_accuracy"], -row["val_clip_nll"]


def fit(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, classes: list[str],
        train: list[PieceMel], val: list[PieceMel], epochs: int = 0) -> tuple[Classifier, list[dict], float]:
    """Train on random crops of `train`, keep the weights with the best validation clip accuracy;
    or, given `epochs`, train that many epochs without validation and keep the last weights.

    Returns the classifier, the per-epoch history and the CPU seconds the loop took.
    """
    if tcfg.pitch_shift and fcfg.scale != "semitone":
        raise MusicgenError("--pitch-shift moves semitone bands; it needs --scale semitone --n-mels 88")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if tcfg.device == "auto" else tcfg.device
    torch.manual_seed(tcfg.seed)
    mcfg = ModelConfig(**{**asdict(mcfg), "n_mels": fcfg.n_mels, "n_classes": len(classes)})
    model = StyleGRU(mcfg)
    frames = np.concatenate([p.mel for p in train]).astype(np.float32)
    model.feat_mean.copy_(torch.from_numpy(frames.mean(axis=0)))
    model.feat_std.copy_(torch.from_numpy(frames.std(axis=0) + 1e-3))
    del frames
    sampler = ClipSampler(train, len(classes), fcfg.clip_frames, tcfg.gain_db, tcfg.masks,
                          model.feat_mean.numpy(), tcfg.seed, tcfg.pitch_shift)
    model.to(device)
    ema = copy.deepcopy(model)  # what is evaluated and saved
    clf = Classifier(ema, classes, fcfg, {})
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
            with torch.no_grad():
                for avg, now in zip(ema.parameters(), model.parameters(), strict=True):
                    avg.lerp_(now, 1.0 - tcfg.ema)
            losses.append(loss.detach())  # no .item() here: a GPU runs on while the next batch is cut
        ema.eval()
        losses = torch.stack(losses).double().cpu().numpy()
        if epochs:
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses))})
            print(f"epoch {epoch}/{epochs}: train {np.mean(losses):.3f}", flush=True)
            continue
        v = evaluate_model(clf, val)
        cpu_min = (time.process_time() - cpu_start) / 60
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_clip_nll": v["clip_nll"],
               "val_clip_accuracy": v["clip_accuracy"], "val_piece_accuracy": v["piece_accuracy"],
               "cpu_minutes": round(cpu_min, 2)}
        history.append(row)
        key = val_key(row)
        improved = key > best
        if improved:
            best, best_state, stale = key, copy.deepcopy(ema.state_dict()), 0
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
        ema.load_state_dict(best_state)
    ema.eval()
    return clf, history, time.process_time() - cpu_start


def train_classifier(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig) -> Path:
    """Render and cache the corpus, train with early stopping, evaluate on test; returns the run folder."""
    if not tcfg.data or not Path(tcfg.data).is_dir():
        raise MusicgenError(f"the corpus folder {tcfg.data or '(none)'} does not exist; pass --data DIR")
    out = Path(tcfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu0 = time.process_time()
    classes, pieces, skipped = load_pieces(tcfg.data, tcfg.min_pieces, fcfg, tcfg.cache, tcfg.transposed,
                                            tcfg.workers)
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


def held_out_metrics(clf: Classifier, split: dict[str, list[PieceMel]], baseline_clips: int) -> dict:
    """The GRU on the test and validation pieces, the baseline and chance, judged with the
    classifier's feature settings (clips per piece, key shifts)."""
    val = evaluate_model(clf, split["val"])
    return {"test": evaluate_model(clf, split["test"]),
            "val": {k: v for k, v in val.items() if k != "per_piece"},
            "baseline_logreg_mean_std_logmel": baseline(clf.classes, split["train"], split["val"],
                                                        split["test"], clf.features, baseline_clips),
            "chance": chance(clf.classes, split["train"], split["test"])}


def combine(folders: list[str | Path]) -> Classifier:
    """One saved classifier, or several trained alike on the same split (seeds) as one ensemble."""
    saved = [load_classifier(f) for f in folders]
    first = saved[0]
    if len(saved) == 1:
        return first

    def recipe(c: Classifier):  # all but the seed and the test-time settings
        features = {k: v for k, v in asdict(c.features).items() if k not in ("max_clips", "key_shifts")}
        return c.classes, features, asdict(c.model.cfg), c.config.get("split")

    for folder, c in zip(folders, saved, strict=True):
        if isinstance(c.model, StyleEnsemble):
            raise MusicgenError(f"{folder} is already an ensemble: list its members instead")
        if recipe(c) != recipe(first):
            raise MusicgenError(f"{folder} differs from {folders[0]} in classes, features, model or split")
    one_member = ("history", "cpu_minutes", "params", "metrics")  # per member: listed below instead
    config = {k: v for k, v in first.config.items() if k not in one_member}
    config.update(member_folders=[str(f) for f in folders],
                  member_seeds=[c.config["train"]["seed"] for c in saved],
                  member_epochs=[len(c.config.get("history", [])) for c in saved],
                  member_cpu_minutes=[c.config.get("cpu_minutes") for c in saved],
                  member_test_piece_accuracy=[c.config["metrics"]["test"]["piece_accuracy"] for c in saved],
                  params=sum(p.numel() for c in saved for p in c.model.parameters()))
    return Classifier(StyleEnsemble([c.model for c in saved]), first.classes, first.features, config)


def retest_classifier(folders: list[str | Path], out: str | Path, data: str, cache: str, max_clips: int,
                      key_shifts: int) -> Path:
    """A saved classifier (or several seeds of one recipe, averaged as one), set to judge `max_clips`
    clips per piece heard `key_shifts` keys up and down, measured again on its held-out pieces (the
    baseline with as many clips) and saved to out/best with the new settings and figures; the
    weights are unchanged."""
    saved = combine(folders)
    config = saved.config
    fcfg = FeatureConfig(**{**asdict(saved.features), "max_clips": max_clips, "key_shifts": key_shifts})
    train = TrainConfig(**config["train"])
    classes, pieces, _ = load_pieces(data or train.data, train.min_pieces, fcfg, cache)
    split = {s: [p for p in pieces if p.split == s] for s in ("train", "val", "test")}
    paths = {s: sorted(p.path for p in ps) for s, ps in split.items()}
    if classes != saved.classes or paths != config["split"]:
        raise MusicgenError(f"the pieces under {data or train.data} are not the ones {folders[0]} "
                            "was trained on")
    clf = Classifier(saved.model, classes, fcfg, config)
    metrics = held_out_metrics(clf, split, train.baseline_clips)
    out = Path(out)
    meta = {k: v for k, v in config.items() if k not in ("classes", "features", "model")}
    meta.update(metrics=metrics, retest=f"--max-clips {max_clips} --key-shifts {key_shifts}")
    save_classifier(out / "best", clf.model, classes, fcfg, meta)
    plot_confusion(metrics["test"], classes, out / "confusion.png")
    print(format_report(metrics))
    return out


def format_report(metrics: dict) -> str:
    """The held-out numbers as a few readable lines."""
    t, b, c = metrics["test"], metrics["baseline_logreg_mean_std_logmel"], metrics["chance"]
    lo, hi = t["piece_accuracy_ci95"]
    return "\n".join([
        f"test: {t['pieces']} pieces, {t['clips']} clips",
        f"  GRU       clip acc {t['clip_accuracy']:.3f}  piece acc {t['piece_accuracy']:.3f} "
        f"(95% CI {lo:.2f}-{hi:.2f})  balanced {t['piece_balanced_accuracy']:.3f}",
        f"  baseline  clip acc {b['clip_accuracy']:.3f}  piece acc {b['piece_accuracy']:.3f}  "
        f"balanced {b['piece_balanced_accuracy']:.3f}  (logistic regression, C={b['C']})",
        f"  chance    uniform {c['uniform']:.3f}  majority ({c['majority_class']}) "
        f"{c['majority_piece_accuracy']:.3f}",
        f"val: GRU clip acc {metrics['val']['clip_accuracy']:.3f} piece acc "
        f"{metrics['val']['piece_accuracy']:.3f}; baseline clip acc {b['val']['clip_accuracy']:.3f} "
        f"piece acc {b['val']['piece_accuracy']:.3f}",
    ])


# ---- style fidelity --------------------------------------------------------------------------

def roundtrip_hits(generator, classifier: Classifier, root: Path, paths: list[str]) -> dict[str, list[bool]]:
    """Per composer: is each real piece still heard as its composer after the generator's tokenizer?

    The control for style fidelity: the tokenizer drops the pedal, merges hands and quantises
    timing and velocity, so this separates "the generator's style is off" from "the classifier
    does not know what token-decoded music sounds like".
    """
    from musicgen import tokenizer as tk

    out: dict[str, list[bool]] = {}
    for rel in paths:
        style = style_of(rel)
        ids = tk.encode(generator.tokenizer, tk.prepare(tk.read_midi(root / rel)))
        result = classify_score(tk.decode(generator.tokenizer, ids), classifier)
        out.setdefault(style, []).append(result["top"] == style)
    return out


def style_fidelity(generator, classifier: Classifier, n: int = 8, bars: int = 16, data: str = "") -> dict:
    """How often pieces generated in style S are heard as S, next to real held-out pieces and chance.

    With the corpus folder (data, default: the one the classifier was trained on) the held-out
    test pieces are also scored after a round trip through the generator's tokenizer.
    """
    from musicgen.sample import SampleConfig

    styles = [c for c in classifier.classes if c in generator.styles]
    real = classifier.config.get("metrics", {}).get("test", {}).get("per_piece", [])
    root = Path(data or classifier.config.get("train", {}).get("data", ""))
    tokenized = roundtrip_hits(generator, classifier, root, [r["path"] for r in real]) \
        if real and str(root) not in ("", ".") and root.is_dir() else {}
    rows, requested, heard = [], [], []
    for style in styles:
        hits, p_style, tops = 0, [], Counter()
        for seed in range(n):
            gen = generator.generate(None, SampleConfig(bars=bars, style=style, seed=seed))
            result = classify_score(gen.scores[0], classifier)
            hits += result["top"] == style
            requested.append(style)
            heard.append(result["top"])
            p_style.append(result["probabilities"][style])
            tops[result["top"]] += 1
        mine = [r for r in real if r["true"] == style]
        via_tokens = tokenized.get(style, [])
        rows.append({"style": style, "generated_hits": hits, "generated": n,
                     "mean_p_style": round(float(np.mean(p_style)), 3),
                     "heard_as": dict(tops.most_common(3)),
                     "real_hits": sum(r["top"] == style for r in mine), "real": len(mine),
                     "tokenized_hits": sum(via_tokens), "tokenized": len(via_tokens)})
        print(f"  {style}: {hits}/{n} generated pieces heard as {style}", flush=True)
    total = sum(r["generated_hits"] for r in rows), sum(r["generated"] for r in rows)
    real_total = sum(r["real_hits"] for r in rows), sum(r["real"] for r in rows)
    tok_total = sum(r["tokenized_hits"] for r in rows), sum(r["tokenized"] for r in rows)
    expected, p_value = steering_test(requested, heard)
    return {"rows": rows, "generated": total, "real": real_total, "tokenized": tok_total,
            "chance": 1 / len(classifier.classes), "n": n, "bars": bars,
            "shuffled_expected_hits": expected, "steering_p": p_value,
            "pieces": [{"requested": r, "heard": h} for r, h in zip(requested, heard, strict=True)]}


def steering_test(requested: list[str], heard: list[str], n_perm: int = 10000,
                  seed: int = 0) -> tuple[float, float]:
    """Hits expected with the requests shuffled among the pieces, and the permutation p-value of
    as many hits as observed.

    Unlike uniform chance, this keeps the classifier's leanings: if it hears most generated music
    as one composer, requests for that composer score hits whether or not the generator steers.
    """
    rng = np.random.default_rng(seed)
    req, hrd = np.array(requested), np.array(heard)
    observed = int((req == hrd).sum())
    shuffled = np.array([int((rng.permutation(req) == hrd).sum()) for _ in range(n_perm)])
    return round(float(shuffled.mean()), 2), float((1 + (shuffled >= observed).sum()) / (1 + n_perm))


def format_fidelity(report: dict) -> str:
    """The style-fidelity report as a markdown table."""
    lines = ["| requested style | generated heard as it | mean p(style) | generated most often heard as "
             "| real held-out pieces heard as it | same, after the tokenizer round trip |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        heard = ", ".join(f"{k} {v}" for k, v in r["heard_as"].items())
        lines.append(f"| {r['style']} | {r['generated_hits']}/{r['generated']} | {r['mean_p_style']:.2f} "
                     f"| {heard} | {r['real_hits']}/{r['real']} | {r['tokenized_hits']}/{r['tokenized']} |")

    def share(pair):
        return f"**{pair[0]}/{pair[1]} = {pair[0] / max(1, pair[1]):.0%}**"

    lines.append(f"| **all** | {share(report['generated'])} | | | {share(report['real'])} "
                 f"| {share(report['tokenized'])} |")
    lines.append(f"\nChance (uniform over {round(1 / report['chance'])} classes): {report['chance']:.0%}. "
                 f"With the requests shuffled among the generated pieces (the classifier's leanings kept): "
                 f"{report['shuffled_expected_hits']:.1f} hits expected, {report['generated'][0]} or more "
                 f"in {report['steering_p']:.2g} of shuffles.")
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`train` or `fidelity`; user errors print one line and exit 2."""
    from musicgen.cli import add_dataclass_args, from_args

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m musicgen.classify_data")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="render the corpus, train the classifier, report on test pieces")
    add_dataclass_args(t, TrainConfig)
    add_dataclass_args(t, ModelConfig, skip=("n_mels", "n_classes"))
    add_dataclass_args(t, FeatureConfig)
    cv = sub.add_parser("crossval", help="k-fold piece-level accuracy of the GRU and the baseline")
    add_dataclass_args(cv, TrainConfig)
    add_dataclass_args(cv, ModelConfig, skip=("n_mels", "n_classes"))
    add_dataclass_args(cv, FeatureConfig)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--pool", nargs="+", metavar="RUN", default=None,
                    help="instead of training: average the GRU of finished runs (seeds) into one")
    cv.add_argument("--rescore", metavar="RUN", default=None,
                    help="instead of training: judge RUN's fold models again with --max-clips and "
                         "--key-shifts (all else as RUN; its baseline too)")
    cv.add_argument("--baseline-only", action="store_true", help="train and test only the baseline")
    cv.add_argument("--gru-only", action="store_true",
                    help="train and test only the GRU (a later --rescore of the run judges the baseline)")
    r = sub.add_parser("retest", help="judge a saved classifier's held-out pieces again with other "
                                      "test-time settings (clips per piece, key shifts)")
    r.add_argument("--classifier", nargs="+", default=[str(ASSET_DIR)],
                   help="a classifier folder, or several trained alike (seeds): averaged as one")
    r.add_argument("--out", required=True, help="writes OUT/best (the classifier) and OUT/confusion.png")
    r.add_argument("--data", default="", help="corpus folder (default: the one it was trained on)")
    r.add_argument("--cache", default=TrainConfig.cache)
    r.add_argument("--max-clips", type=int, required=True)
    r.add_argument("--key-shifts", type=int, default=0)
    f = sub.add_parser("fidelity", help="classify generated pieces per requested style")
    f.add_argument("--checkpoint", default=None, help="generator folder (default: assets/model)")
    f.add_argument("--classifier", default=str(ASSET_DIR))
    f.add_argument("--n", type=int, default=8, help="pieces per style (seeds 0..n-1)")
    f.add_argument("--bars", type=int, default=16)
    f.add_argument("--json", default=None, help="also write the report here")
    f.add_argument("--data", default="", help="corpus folder (default: the classifier's training data)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # a shared machine: one core per run (--workers renders on more)
    try:
        if args.command == "train":
            train_classifier(from_args(TrainConfig, args), from_args(ModelConfig, args),
                             from_args(FeatureConfig, args))
            return 0
        if args.command == "retest":
            retest_classifier(args.classifier, args.out, args.data, args.cache, args.max_clips,
                              args.key_shifts)
            return 0
        if args.command == "crossval":
            from musicgen.classify_cv import main as crossval_main

            # a re-scored run keeps its own feature settings: only the test-time ones come from here
            fcfg = None if args.rescore else from_args(FeatureConfig, args)
            return crossval_main(from_args(TrainConfig, args), from_args(ModelConfig, args), fcfg, args.folds,
                                 args.pool, args.rescore, args.baseline_only, args.max_clips, args.key_shifts,
                                 args.gru_only)
        from musicgen.checkpoint import DEFAULT_CHECKPOINT
        from musicgen.sample import Generator

        t0 = time.time()
        report = style_fidelity(Generator(args.checkpoint or DEFAULT_CHECKPOINT, "cpu"),
                                load_classifier(args.classifier), args.n, args.bars, args.data)
        report["seconds"] = round(time.time() - t0, 1)
        print(format_fidelity(report))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=1))
        return 0
    except MusicgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
