"""Cross-validated accuracy of the style critic and its baseline, every piece held out once.

The generator's test split holds 23 pieces of the critic's composers: a 95% interval of about
+-20 points, too wide to tell two classifiers apart. Here the pieces are dealt into k folds
(stratified by composer, ordered by the same path hash as the split); fold i is the test set,
fold i+1 chooses the early-stopping epoch and the baseline's C, the rest trains. The GRU and
the logistic regression see the same folds, so their per-piece hits pair up for McNemar's test.

`musicgen critic crossval --data DIR [--folds 5] [--seed S] [--out DIR]` (each fold's model is
kept in OUT/fold0, fold1, ...; `--baseline-only` skips the GRU, `--gru-only` the baseline); then
`musicgen critic crossval --pool RUN [RUN ...] --out DIR` averages the GRUs of runs that differ
only in their seed (each run keeps its clip probabilities) and scores them as one, and
`musicgen critic crossval --rescore RUN --max-clips N --key-shifts K --out DIR` judges RUN's fold
models (and its baseline) again with those test-time settings.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from musicgen.critic.api import Classifier, load_classifier, save_classifier
from musicgen.critic.corpus import PieceMel, load_pieces
from musicgen.critic.features import FeatureConfig, load_features
from musicgen.critic.model import ModelConfig, load_model_config
from musicgen.critic.report import baseline, score_predictions, wilson
from musicgen.critic.train import TrainConfig, check_recipe, fit, load_train_config, val_key
from musicgen.data import deal_by_style
from musicgen.errors import MusicgenError


def assign_folds(paths: list[str], k: int) -> dict[str, int]:
    """Fold of each path: within a composer, ordered by path hash, dealt round-robin."""
    return {p: i % k for files in deal_by_style(paths).values() for i, p in enumerate(files)}


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


def crossval(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, folds: int,
             trained: Path | None = None, gru: bool = True, with_baseline: bool = True) -> dict:
    """Train and test the GRU and the baseline on every fold; pooled per-piece results.

    `trained`: a finished run whose fold models (saved as fold0/, fold1/, ...) are judged again
    with `fcfg`'s test-time settings instead of training new ones. `gru=False`: the baseline only;
    `with_baseline=False`: the GRU only (its fold models kept for a later rescore with the baseline).
    """
    if folds < 3:
        raise MusicgenError(f"--folds needs at least 3 (a test, a validation and a training fold), "
                            f"not {folds}")
    if gru and not trained:
        check_recipe(tcfg, fcfg)
    classes, pieces, skipped = load_pieces(tcfg.data, tcfg.min_pieces, fcfg, tcfg.cache, tcfg.workers)
    fold = assign_folds([p.path for p in pieces], folds)
    per_piece, clip_hits, cpu = [], Counter(), []
    for i in range(folds):
        role = {i: "test", (i + 1) % folds: "val"}
        part: dict[str, list[PieceMel]] = {"train": [], "val": [], "test": []}
        for p in pieces:
            part[role.get(fold[p.path], "train")].append(p)
        print(f"fold {i + 1}/{folds}: train/val/test pieces "
              f"{len(part['train'])}/{len(part['val'])}/{len(part['test'])}", flush=True)
        rows = [{"path": p.path, "fold": i, "true": classes[p.label]} for p in part["test"]]
        if with_baseline:
            lr = baseline(classes, part["train"], part["val"], part["test"], fcfg, tcfg.baseline_clips,
                          tcfg.refit)
            clip_hits["baseline"] += int(np.trace(lr["clip_confusion"]))
            for row, b in zip(rows, lr["per_piece"], strict=True):
                row["baseline"] = b["top"]
        if gru:
            saved = trained / f"fold{i}" if trained else None
            clf, seconds = fold_model(tcfg, mcfg, fcfg, classes, part, saved)
            if not trained:  # kept so that test-time settings can be judged again without training
                save_classifier(Path(tcfg.out) / f"fold{i}", clf.model, classes, fcfg,
                                {"fold": i, "folds": folds, "test": [p.path for p in part["test"]]})
            probs = [clf.clip_probabilities(p.mel) for p in part["test"]]
            g = score_predictions(classes, part["test"], probs)
            clip_hits["gru"] += int(np.trace(g["clip_confusion"]))
            clip_hits["clips"] += g["clips"]  # the baseline judges the same clips
            cpu.append(round(seconds / 60, 2))
            for row, x, pr in zip(rows, g["per_piece"], probs, strict=True):
                row.update(gru=x["top"], gru_clip_probs=np.round(pr, 5).tolist())
            print(f"  fold {i + 1}: GRU {g['piece_accuracy']:.3f} piece accuracy ({cpu[-1]} CPU min)",
                  flush=True)
        else:
            clip_hits["clips"] += lr["clips"]
        if with_baseline:
            print(f"  fold {i + 1}: baseline {lr['piece_accuracy']:.3f} piece accuracy", flush=True)
        per_piece += rows
    lr_hits = [r["baseline"] == r["true"] for r in per_piece] if with_baseline else []
    majority = Counter(r["true"] for r in per_piece).most_common(1)[0]
    report = {"folds": folds, "classes": classes, "train": asdict(tcfg), "model": asdict(mcfg),
              "features": asdict(fcfg), "trained": str(trained) if trained else None,
              "skipped_files": skipped, "cpu_minutes_per_fold": cpu, "gru": None, "baseline": None,
              "chance": {"uniform": 1 / len(classes), "majority_class": majority[0],
                         "majority_piece_accuracy": majority[1] / len(per_piece)},
              "per_piece": per_piece}
    if with_baseline:
        report["baseline"] = summary(lr_hits, clip_hits["baseline"], clip_hits["clips"])
    if gru:
        gru_hits = [r["gru"] == r["true"] for r in per_piece]
        report.update(gru=summary(gru_hits, clip_hits["gru"], clip_hits["clips"]),
                      gru_vs_uniform_p=binomial_two_sided(sum(gru_hits), len(gru_hits), 1 / len(classes)))
        if with_baseline:
            report["gru_vs_baseline"] = mcnemar(gru_hits, lr_hits)
    return report


def fold_model(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig, classes: list[str],
               part: dict[str, list[PieceMel]], saved: Path | None) -> tuple[Classifier, float]:
    """One fold's GRU and the CPU seconds its training took: trained here, or loaded from `saved`
    and set to judge with fcfg's test-time settings (clips per piece, key shifts)."""
    if saved:
        clf = load_classifier(saved)
        if clf.classes != classes:
            raise MusicgenError(f"{saved} was trained on other classes: {clf.classes}")
        return Classifier(clf.model, classes, fcfg, clf.config), 0.0
    clf, history, seconds = fit(tcfg, mcfg, fcfg, classes, part["train"], part["val"])
    if tcfg.refit:  # the epoch count early stopping chose, now on training + validation pieces
        best = max(history, key=val_key)["epoch"]  # the first of equals, as fit keeps
        clf, _, more = fit(tcfg, mcfg, fcfg, classes, part["train"] + part["val"], [], epochs=best)
        seconds += more
    return clf, seconds


def ensemble(runs: list[Path]) -> dict:
    """Pool cross-validations that differ only in their seed: each clip's GRU probabilities are
    averaged over the runs, then scored as one model against the (identical) baseline."""
    reports = [json.loads((Path(r) / "crossval.json").read_text()) for r in runs]
    first = reports[0]

    with_baseline = all(r["baseline"] for r in reports)  # else (a --gru-only run) the pool has none

    def layout(r):
        return [(x["path"], x["fold"], x["baseline"] if with_baseline else None,
                 len(x.get("gru_clip_probs", ()))) for x in r["per_piece"]]

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
        kept = ("path", "fold", "true", "baseline") if with_baseline else ("path", "fold", "true")
        per_piece.append({**{k: rows[0][k] for k in kept},
                          "gru": classes[int(probs.mean(axis=0).argmax())]})
    gru_hits = [r["gru"] == r["true"] for r in per_piece]
    report = {"runs": [str(r) for r in runs], "member_piece_hits": [r["gru"]["piece_hits"] for r in reports],
              "folds": first["folds"], "classes": classes,
              "gru": summary(gru_hits, clip_hits, clips),
              "baseline": first["baseline"] if with_baseline else None, "chance": first["chance"],
              "gru_vs_uniform_p": binomial_two_sided(sum(gru_hits), len(gru_hits), 1 / len(classes)),
              "per_piece": per_piece}
    if with_baseline:
        report["gru_vs_baseline"] = mcnemar(gru_hits, [r["baseline"] == r["true"] for r in per_piece])
    return report


def format_crossval(r: dict) -> str:
    """The pooled numbers as a few readable lines."""
    g, b = r["gru"], r["baseline"]
    line = "  {:<9} piece acc {}/{} = {:.3f} (95% CI {:.2f}-{:.2f})  clip acc {:.3f}"
    n = (g or b)["pieces"]
    out = [f"{r['folds']}-fold cross-validation over {n} pieces, {len(r['classes'])} composers"]
    for name, x in (("GRU", g), ("baseline", b)):
        if x:
            out.append(line.format(name, x["piece_hits"], x["pieces"], x["piece_accuracy"],
                                   *x["piece_accuracy_ci95"], x["clip_accuracy"]))
    c = r["chance"]
    out.append(f"  chance    uniform {c['uniform']:.3f}, majority ({c['majority_class']}) "
               f"{c['majority_piece_accuracy']:.3f}")
    if g and b:
        m = r["gru_vs_baseline"]
        out.append(f"  McNemar: GRU alone right on {m['only_first']} pieces, baseline alone on "
                   f"{m['only_second']}, p = {m['p_value']:.3g}; GRU vs uniform chance p = "
                   f"{r['gru_vs_uniform_p']:.2g}")
    return "\n".join(out)


def rescore(run: Path, out: str, max_clips: int, key_shifts: int, baseline_only: bool = False,
            gru_only: bool = False) -> dict:
    """A finished run's fold models (and its baseline) judged again on `max_clips` clips per piece,
    each heard `key_shifts` keys up and down; every other setting is the run's."""
    r = json.loads((run / "crossval.json").read_text())
    if not (run / "fold0" / "model.safetensors").is_file():
        raise MusicgenError(f"{run} kept no fold models (fold0/, ...): re-run it with this version")
    fcfg = load_features(r["features"]).with_test_time(max_clips, key_shifts)
    tcfg = load_train_config({**r["train"], "out": out})
    return crossval(tcfg, load_model_config(r["model"]), fcfg, r["folds"],
                    trained=run, gru=not baseline_only, with_baseline=not gru_only)


def run(tcfg: TrainConfig, mcfg: ModelConfig, fcfg: FeatureConfig | None = None, *, folds: int = 5,
        pool: list[str] | None = None, rescore_run: str | None = None, max_clips: int = 32,
        key_shifts: int = 3, baseline_only: bool = False, gru_only: bool = False) -> dict:
    """Run the cross-validation of `fcfg`'s features (or pool finished runs, or judge `rescore_run`'s
    fold models again with max_clips and key_shifts, its own settings otherwise), print it and
    write OUT/crossval.json; returns the report."""
    if baseline_only and gru_only:
        raise MusicgenError("--baseline-only and --gru-only leave nothing to run: pass one of them")
    t0 = time.time()
    if pool:
        report = ensemble([Path(r) for r in pool])
    elif rescore_run:
        report = rescore(Path(rescore_run), tcfg.out, max_clips, key_shifts, baseline_only, gru_only)
    else:
        if fcfg is None:
            raise MusicgenError("a cross-validation needs its feature settings")
        report = crossval(tcfg, mcfg, fcfg, folds, gru=not baseline_only, with_baseline=not gru_only)
    report["seconds"] = round(time.time() - t0)
    out = Path(tcfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crossval.json").write_text(json.dumps(report, indent=1))
    print(format_crossval(report))
    return report
