"""How good a critic is on held-out pieces: clip and piece accuracy with honest intervals, the
logistic-regression baseline on the same clips, chance, confusion matrices and a short report.

Validation and test judge each held-out piece on the same evenly spaced clips the inference
API uses, so the piece accuracy is what `classify_file` says on those pieces.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from musicgen.critic.api import Classifier
from musicgen.critic.corpus import PieceMel
from musicgen.critic.features import FeatureConfig, clip_starts, crop
from musicgen.errors import MusicgenError


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


def held_out_metrics(clf: Classifier, split: dict[str, list[PieceMel]], baseline_clips: int) -> dict:
    """The GRU on the test and validation pieces, the baseline and chance, judged with the
    classifier's feature settings (clips per piece, key shifts)."""
    val = evaluate_model(clf, split["val"])
    return {"test": evaluate_model(clf, split["test"]),
            "val": {k: v for k, v in val.items() if k != "per_piece"},
            "baseline_logreg_mean_std_logmel": baseline(clf.classes, split["train"], split["val"],
                                                        split["test"], clf.features, baseline_clips),
            "chance": chance(clf.classes, split["train"], split["test"])}


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


# ---- figures ---------------------------------------------------------------------------------

def pyplot():
    """matplotlib.pyplot drawing off screen (imported only when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)


def plot_confusion(report: dict, classes: list[str], path: Path) -> None:
    """Test confusion matrices (pieces and clips) as one PNG."""
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 5.4), dpi=100)
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
    save_figure(fig, path)
