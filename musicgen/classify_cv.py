"""Cross-validated accuracy of the style critic and its baseline, every piece held out once.

The generator's test split holds 23 pieces of the critic's composers: a 95% interval of about
+-20 points, too wide to tell two classifiers apart. Here the pieces are dealt into k folds
(stratified by composer, ordered by the same path hash as the split); fold i is the test set,
fold i+1 chooses the early-stopping epoch and the baseline's C, the rest trains. The GRU and
the logistic regression see the same folds, so their per-piece hits pair up for McNemar's test.

`python -m musicgen.classify_data crossval --data DIR [--folds 5] [--seed S] [--out DIR]`; then
`python -m musicgen.classify_data crossval --pool RUN [RUN ...] --out DIR` averages the GRUs of runs
that differ only in their seed (each run keeps its clip probabilities) and scores them as one.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from musicgen.classify import FeatureConfig, ModelConfig
from musicgen.classify_data import (
    PieceMel,
    TrainConfig,
    baseline,
    fit,
    load_pieces,
    score_predictions,
    val_key,
    wilson,
)
from musicgen.data import path_rank, style_of
from musicgen.errors import MusicgenError


def assign_folds(paths: list[str], k: int) -> dict[str, int]:
    """Fold of each path: within a composer, ordered by path hash, dealt round-robin."""
    by_style: dict[str, list[str]] = {}
    for p in paths:
        by_style.setdefault(style_of(p), []).append(p)
    return {p: i % k for files in by_style.values() for i, p in enumerate(sorted(files, key=path_rank))}


def binomial_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial p-value: the probability of outcomes no likelier than k of n."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return min(1.0, sum(q for q in pmf if q <= pmf[k] * (1 + 1e-9)))


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """Exact McNemar test of paired hits: pieces only a gets right vs only b, and the p-value."""
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return {"only_first": only_a, "only_second": only_b,
            "p_value": binomial_two_sided(only_a, only_a + only_b) if only_a + only_b else 1.0}


def summary(hits: list[bool], clip_hits: int, clips: int) -> dict:
    """Piece accuracy with its 95% Wilson interval, and clip accuracy."""
    k, n = sum(hits), len(hits)
    return {"piece_hits": k, "pieces": n, "piece_accuracy": k / max(1, n),
            "piece_accuracy_ci95": [round(x, 3) for x in wilson(k, n)],
            "clip_accuracy": clip_hits / max(1, clips), "clips": clips}


def crossval(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, folds: int) -> dict:
    """Train and test the GRU and the baseline on every fold; pooled per-piece results."""
    classes, pieces, skipped = load_pieces(tcfg.data, tcfg.min_pieces, fcfg, tcfg.cache)
    fold = assign_folds([p.path for p in pieces], folds)
    per_piece, clip_hits, cpu = [], Counter(), []
    for i in range(folds):
        role = {i: "test", (i + 1) % folds: "val"}
        part: dict[str, list[PieceMel]] = {"train": [], "val": [], "test": []}
        for p in pieces:
            part[role.get(fold[p.path], "train")].append(p)
        print(f"fold {i + 1}/{folds}: train/val/test pieces "
              f"{len(part['train'])}/{len(part['val'])}/{len(part['test'])}", flush=True)
        clf, history, seconds = fit(tcfg, mcfg, fcfg, classes, part["train"], part["val"])
        if tcfg.refit:  # the epoch count early stopping chose, now on training + validation pieces
            best = max(history, key=val_key)["epoch"]  # the first of equals, as fit keeps
            clf, _, more = fit(tcfg, mcfg, fcfg, classes, part["train"] + part["val"], [], epochs=best)
            seconds += more
        probs = [clf.clip_probabilities(p.mel.astype(np.float32)) for p in part["test"]]
        gru = score_predictions(classes, part["test"], probs)
        lr = baseline(classes, part["train"], part["val"], part["test"], fcfg, tcfg.baseline_clips,
                      tcfg.refit)
        cpu.append(round(seconds / 60, 2))
        clip_hits["gru"] += int(np.trace(gru["clip_confusion"]))
        clip_hits["baseline"] += int(np.trace(lr["clip_confusion"]))  # the same clips as the GRU's
        clip_hits["clips"] += gru["clips"]
        for g, b, pr in zip(gru["per_piece"], lr["per_piece"], probs, strict=True):
            per_piece.append({"path": g["path"], "fold": i, "true": g["true"], "gru": g["top"],
                              "baseline": b["top"], "gru_clip_probs": np.round(pr, 5).tolist()})
        print(f"  fold {i + 1}: GRU {gru['piece_accuracy']:.3f}, baseline {lr['piece_accuracy']:.3f} "
              f"piece accuracy ({cpu[-1]} CPU min)", flush=True)
    gru_hits = [r["gru"] == r["true"] for r in per_piece]
    lr_hits = [r["baseline"] == r["true"] for r in per_piece]
    majority = Counter(r["true"] for r in per_piece).most_common(1)[0]
    return {"folds": folds, "classes": classes, "train": asdict(tcfg), "model": asdict(mcfg),
            "features": asdict(fcfg), "skipped_files": skipped, "cpu_minutes_per_fold": cpu,
            "gru": summary(gru_hits, clip_hits["gru"], clip_hits["clips"]),
            "baseline": summary(lr_hits, clip_hits["baseline"], clip_hits["clips"]),
            "chance": {"uniform": 1 / len(classes), "majority_class": majority[0],
                       "majority_piece_accuracy": majority[1] / len(per_piece)},
            "gru_vs_baseline": mcnemar(gru_hits, lr_hits),
            "gru_vs_uniform_p": binomial_two_sided(sum(gru_hits), len(gru_hits), 1 / len(classes)),
            "per_piece": per_piece}


def ensemble(runs: list[Path]) -> dict:
    """Pool cross-validations that differ only in their seed: each clip's GRU probabilities are
    averaged over the runs, then scored as one model against the (identical) baseline."""
    reports = [json.loads((Path(r) / "crossval.json").read_text()) for r in runs]
    first = reports[0]

    def layout(r):
        return [(x["path"], x["fold"], x["baseline"], len(x.get("gru_clip_probs", ())))
                for x in r["per_piece"]]

    if any(layout(r) != layout(first) or r["classes"] != first["classes"] for r in reports):
        raise MusicgenError("these cross-validations differ in pieces, folds, classes or baseline")
    if not all(n for *_, n in layout(first)):
        raise MusicgenError("a run has no clip probabilities: re-run it with this version")
    classes, per_piece, clip_hits, clips = first["classes"], [], 0, 0
    for rows in zip(*(r["per_piece"] for r in reports), strict=True):
        probs = np.mean([np.array(x["gru_clip_probs"]) for x in rows], axis=0)  # (clips, classes)
        true = classes.index(rows[0]["true"])
        clip_hits += int((probs.argmax(axis=1) == true).sum())
        clips += len(probs)
        per_piece.append({**{k: rows[0][k] for k in ("path", "fold", "true", "baseline")},
                          "gru": classes[int(probs.mean(axis=0).argmax())]})
    gru_hits = [r["gru"] == r["true"] for r in per_piece]
    lr_hits = [r["baseline"] == r["true"] for r in per_piece]
    return {"runs": [str(r) for r in runs], "member_piece_hits": [r["gru"]["piece_hits"] for r in reports],
            "folds": first["folds"], "classes": classes,
            "gru": summary(gru_hits, clip_hits, clips), "baseline": first["baseline"],
            "chance": first["chance"], "gru_vs_baseline": mcnemar(gru_hits, lr_hits),
            "gru_vs_uniform_p": binomial_two_sided(sum(gru_hits), len(gru_hits), 1 / len(classes)),
            "per_piece": per_piece}


def format_crossval(r: dict) -> str:
    """The pooled numbers as a few readable lines."""
    g, b, m = r["gru"], r["baseline"], r["gru_vs_baseline"]
    line = "  {:<9} piece acc {}/{} = {:.3f} (95% CI {:.2f}-{:.2f})  clip acc {:.3f}"
    return "\n".join([
        f"{r['folds']}-fold cross-validation over {g['pieces']} pieces, {len(r['classes'])} composers",
        line.format("GRU", g["piece_hits"], g["pieces"], g["piece_accuracy"], *g["piece_accuracy_ci95"],
                    g["clip_accuracy"]),
        line.format("baseline", b["piece_hits"], b["pieces"], b["piece_accuracy"],
                    *b["piece_accuracy_ci95"], b["clip_accuracy"]),
        f"  chance    uniform {r['chance']['uniform']:.3f}, majority ({r['chance']['majority_class']}) "
        f"{r['chance']['majority_piece_accuracy']:.3f}",
        f"  McNemar: GRU alone right on {m['only_first']} pieces, baseline alone on {m['only_second']}, "
        f"p = {m['p_value']:.3g}; GRU vs uniform chance p = {r['gru_vs_uniform_p']:.2g}",
    ])


def main(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, folds: int,
         runs: list[str] | None = None) -> int:
    """Run the cross-validation (or pool finished `runs`), print it, write OUT/crossval.json."""
    t0 = time.time()
    report = ensemble([Path(r) for r in runs]) if runs else crossval(tcfg, mcfg, fcfg, folds)
    report["seconds"] = round(time.time() - t0)
    out = Path(tcfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crossval.json").write_text(json.dumps(report, indent=1))
    print(format_crossval(report))
    return 0
