"""Style fidelity of the generator: how often a piece generated in style S is heard as S by the critic.

`musicgen fidelity [--checkpoint assets/model] [--n 8] [--bars 16] [--json OUT] [--data DIR]`

An evaluation of the generator, not of the critic: it uses the critic (musicgen.critic.api) as
its judge, beside the same critic on real held-out pieces, those pieces after a round trip
through the generator's tokenizer, uniform chance and a shuffle test of the requests.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from musicgen.critic.api import Classifier, classify_score, load_classifier
from musicgen.data import style_of
from musicgen.resources import CLASSIFIER_DIR


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


def run(checkpoint: str | None = None, classifier: str | Path = CLASSIFIER_DIR, n: int = 8, bars: int = 16,
        json_out: str | None = None, data: str = "") -> dict:
    """Generate n pieces per style with the checkpoint (default: the shipped generator) on the CPU,
    judge them, print the table and (json_out) write the report; returns it."""
    from musicgen.checkpoint import DEFAULT_CHECKPOINT
    from musicgen.sample import Generator

    t0 = time.time()
    report = style_fidelity(Generator(checkpoint or DEFAULT_CHECKPOINT, "cpu"), load_classifier(classifier),
                            n, bars, data)
    report["seconds"] = round(time.time() - t0, 1)
    print(format_fidelity(report))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=1))
    return report
