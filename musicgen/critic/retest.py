"""A saved critic judged again with other test-time settings, or several seeds of one recipe
averaged into one critic and measured on their held-out pieces; the weights are unchanged.

`musicgen critic retest --out DIR --max-clips N [--key-shifts K] [--classifier DIR [DIR ...]]`
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from musicgen.critic.api import Classifier, load_classifier, save_classifier
from musicgen.critic.corpus import load_pieces
from musicgen.critic.model import StyleEnsemble
from musicgen.critic.report import format_report, held_out_metrics, plot_confusion
from musicgen.critic.train import load_train_config
from musicgen.errors import MusicgenError


def combine(folders: list[str | Path]) -> Classifier:
    """One saved classifier, or several trained alike on the same split (seeds) as one ensemble."""
    saved = [load_classifier(f) for f in folders]
    first = saved[0]
    if len(saved) == 1:
        return first

    def recipe(c: Classifier):  # all but the seed and the test-time settings
        return c.classes, c.features.recipe(), asdict(c.model.cfg), c.config.get("split")

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
    fcfg = saved.features.with_test_time(max_clips, key_shifts)
    train = load_train_config(config["train"])
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
