"""Held-out evaluation: token metrics against count baselines, then continuations against real music.

`python -m musicgen evaluate [--checkpoint DIR] [--data DIR] [--pieces N] [--json OUT]`

1. Tokens: NLL, perplexity, top-1/top-5 of the GRU on the checkpoint's own TEST pieces,
   next to a unigram and a Kneser-Ney n-gram fitted on its TRAIN pieces, all scored on the
   same stream (`[style] + piece`, every token after the style token).
2. Continuations: each test piece's opening primes the GRU, which writes the next bars
   `continuations` times (one batch) with default sampling and a fixed seed per piece; the music
   statistics of those bars are shown beside the same statistics of the bars that really follow
   the opening (5th-95th percentile bands over continuations, and over pieces for the real bars).
3. Coherence (`musicgen.coherence`): how each continuation keeps to its seed (texture, range,
   register, key, left hand, loops, non-trivial copying), and how many of those measures fall
   outside the real next bars' 5th-95th band.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musicgen import baselines, coherence, metrics
from musicgen import tokenizer as tk
from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from musicgen.data import Piece, data_root, load_corpus, split_pieces, with_style
from musicgen.errors import MusicgenError


@dataclass
class EvalConfig:
    seed_bars: int = 8  # bars of each test piece's opening given to the model
    bars: int = 16  # bars it writes after them, compared with the real next bars
    ngram_order: int = 5  # the best order on the validation pieces (docs/RESULTS.md)
    sample_seed: int = 0  # piece i is continued with seed sample_seed + i: fixed, varied
    pieces: int = 0  # at most this many test pieces (in path order); 0: all
    split: str = "test"  # "val" to tune sampling defaults without touching the test pieces
    corpus: str = ""  # only the held-out pieces of this corpus folder (piano-midi-de: the old 32); "": all
    temperature: float = 0.0  # sampling temperature for the continuations; 0: SampleConfig's default
    top_p: float = 0.0  # nucleus for the continuations; 0: SampleConfig's default
    key_hold: float = -1.0  # pull toward the seed's pitch classes (SampleConfig.key_hold); -1: its default
    texture_hold: float = -1.0  # keep the seed's notes per bar (SampleConfig.texture_hold); -1: its default
    continuations: int = 2  # continuations per piece, sampled as one batch (SampleConfig.variations)

    def __post_init__(self):
        """Checked before any scoring, so a bad flag costs nothing."""
        if not 2 <= self.ngram_order <= baselines.MAX_ORDER:
            raise MusicgenError(f"--ngram-order must be between 2 and {baselines.MAX_ORDER}")
        if not self.seed_bars >= 1 or not self.bars >= 1 or not self.pieces >= 0:
            raise MusicgenError("--seed-bars and --bars must be at least 1, --pieces at least 0")
        from musicgen.sample import MAX_VARIATIONS

        if not 1 <= self.continuations <= MAX_VARIATIONS:
            raise MusicgenError(f"--continuations must be between 1 and {MAX_VARIATIONS}")
        if self.split not in ("val", "test"):
            raise MusicgenError(f"--split must be val or test, not {self.split!r}")
        sampling(self)  # the sampling overrides are checked as SampleConfig checks them


POSITION_BOUNDS = (256, 1024, 4096)  # token positions: the opening, the first minute or so, long memory
STAT_NAMES = {  # key: (label, digits)
    "notes_per_second": ("notes per second", 2),
    "pc_js_to_seed": ("pitch-class JS to seed (bits)", 3),
    "pc_js_to_real": ("pitch-class JS to real next bars", 3),
    "scale_consistency": ("scale consistency", 3),
    "polyphony": ("polyphony (notes sounding)", 2),
    "empty_bar_rate": ("empty-bar rate", 3),
    "longest_note_s": ("longest note (s)", 2),
    "train_ngram_share": ("12-note interval n-grams in train", 3),
    "longest_copied_notes": ("longest run copied from train (notes)", 1),
}


@torch.no_grad()
def piece_nll(model, ids: np.ndarray, style_id: int, device: str, chunk: int = 4096):
    """Per-token NLL (nats) and logits-argmax/top-5 hits of a stateful GRU over one whole piece."""
    seq = torch.from_numpy(np.concatenate([[style_id], ids]).astype(np.int64)).to(device)
    h, nll, top1, top5 = None, [], [], []
    for s in range(0, len(seq) - 1, chunk):
        x = seq[s:s + chunk][None]
        y = seq[s + 1:s + 1 + chunk][None]
        x = x[:, :y.shape[1]]
        logits, _, h = model(x, h=h)
        logits = logits[0].float()
        nll.append(F.cross_entropy(logits, y[0], reduction="none"))
        best = logits.topk(5, dim=-1).indices
        top1.append(best[:, 0] == y[0])
        top5.append((best == y[0][:, None]).any(-1))
    cat = lambda xs: torch.cat(xs).cpu().numpy()  # noqa: E731
    return cat(nll), cat(top1), cat(top5)


@torch.no_grad()
def piece_scores(model, pieces: list[Piece], tokenizer, device: str, batch: int = 16,
                 chunk: int = 2048) -> list[tuple[np.ndarray, ...]]:
    """(NLL, top-1 hits, top-5 hits) per token of each whole piece, state carried from its start:
    piece_nll's numbers, for pieces of similar length read side by side (a batch of 16 reads about
    four times as many tokens a second on one core; padding after a piece's end changes none of it)."""
    model.eval()
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i].ids))
    out: list = [None] * len(pieces)
    for g in range(0, len(order), batch):
        group = order[g:g + batch]
        seqs = [with_style(pieces[i], tokenizer) for i in group]
        x = np.full((len(group), max(map(len, seqs))), tokenizer.pad_token_id, dtype=np.int64)
        for row, seq in enumerate(seqs):
            x[row, :len(seq)] = seq
        x = torch.from_numpy(x).to(device)
        h, parts = None, []
        for s in range(0, x.shape[1] - 1, chunk):
            logits, _, h = model(x[:, s:min(s + chunk, x.shape[1] - 1)], h=h)  # (B, T, V)
            y = x[:, s + 1:s + 1 + logits.shape[1]]
            best = logits.float().topk(5, dim=-1).indices  # (B, T, 5)
            parts.append((F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none"),
                          best[..., 0] == y, (best == y[..., None]).any(-1)))
        nll, top1, top5 = (torch.cat(v, dim=1).cpu().numpy() for v in zip(*parts))
        for row, (i, seq) in enumerate(zip(group, seqs)):
            n = len(seq) - 1
            out[i] = (nll[row, :n], top1[row, :n], top5[row, :n])
    return out


def split_metrics(model, pieces: list[Piece], tokenizer, device: str, scores=None) -> dict[str, float]:
    """Token-weighted NLL, perplexity and top-1/top-5 accuracy of the GRU over whole pieces."""
    scores = piece_scores(model, pieces, tokenizer, device) if scores is None else scores
    nll, t1, t5 = (np.concatenate(v) for v in zip(*scores))
    return {"nll": float(nll.mean()), "ppl": float(math.exp(nll.mean())),
            "top1": float(t1.mean()), "top5": float(t5.mean()), "tokens": int(len(nll))}


def position_nll(nlls: list[np.ndarray], bounds: tuple[int, ...] = POSITION_BOUNDS) -> dict[str, dict]:
    """{"0-256": {nll, tokens, pieces}, "256-1k": ..., "4k+": ...}: the mean NLL of the tokens at those
    positions of their piece (token i of the piece is predicted from the style token and tokens < i).
    A model that forgets does well early and no better later; one that remembers improves."""
    edges = [0, *bounds, None]
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        name = f"{_k(lo)}-{_k(hi)}" if hi else f"{_k(lo)}+"
        part = [n[lo:hi] for n in nlls if len(n) > lo]
        flat = np.concatenate(part) if part else np.zeros(0)
        out[name] = {"nll": float(flat.mean()) if len(flat) else None, "tokens": int(len(flat)),
                     "pieces": len(part)}
    return out


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n) if n < 1000 else f"{n / 1024:g}k"


def position_report(pieces: list[Piece], scores) -> dict:
    """NLL by position over all pieces and per corpus (the corpus a piece's path comes from)."""
    nlls = [s[0] for s in scores]
    by_corpus: dict[str, list[np.ndarray]] = {}
    for p, n in zip(pieces, nlls):
        by_corpus.setdefault(p.corpus or "corpus", []).append(n)
    return {"all": position_nll(nlls), "corpora": {c: position_nll(v) for c, v in sorted(by_corpus.items())}}


def token_report(model, tokenizer, train: list[Piece], test: list[Piece], order: int) -> dict:
    """{name: {nll, ppl, top1, top5, tokens, seconds}} for the GRU and both baselines; the GRU's row
    also holds its NLL by position in the piece ("by_position", position_report)."""
    out = {}
    t0 = time.perf_counter()
    scores = piece_scores(model, test, tokenizer, "cpu")
    out["gru"] = split_metrics(model, test, tokenizer, "cpu", scores)
    out["gru"]["seconds"] = round(time.perf_counter() - t0, 1)
    out["gru"]["by_position"] = position_report(test, scores)
    fit, scored = [with_style(p, tokenizer) for p in train], [with_style(p, tokenizer) for p in test]
    V = len(tokenizer.vocab)
    for name, lm in (("unigram", baselines.Unigram(V)),
                     (f"{order}-gram", baselines.KneserNey(V, order, tokenizer.pad_token_id))):
        t0 = time.perf_counter()
        out[name] = baselines.summary(*baselines.score(lm.fit(fit), scored))
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
        if out[name]["tokens"] != out["gru"]["tokens"]:  # the same stream, or the table lies
            raise RuntimeError(f"{name} scored {out[name]['tokens']} tokens, the GRU {out['gru']['tokens']}")
    return out


def continuation_report(checkpoint: Path, tokenizer, train: list[Piece], test: list[Piece],
                        cfg: EvalConfig) -> dict:
    """Statistics and coherence measures of generated and of real continuations after each test
    piece's opening: per piece a list of `cfg.continuations` generated rows and one real row."""
    from musicgen.sample import Generator, continuation_of

    t0 = time.perf_counter()
    index = metrics.CopyIndex([metrics.intervals(tk.decode(tokenizer, p.ids)) for p in train])
    index_s = time.perf_counter() - t0
    gen = Generator(checkpoint, device="cpu")
    rows, skipped = [], []
    t0 = time.perf_counter()
    for i, piece in enumerate(test):
        # the piece as the model sees it (decoded tokens), so real and generated share a grid
        ref = tk.decode(tokenizer, piece.ids)
        if len(tk.bar_starts(ref)) < cfg.seed_bars + cfg.bars:
            skipped.append(piece.path)
            continue
        cut = int(metrics.bar_bounds(ref, cfg.seed_bars)[-1])
        seed = ref.clip(0, cut, clip_end=False)
        style = piece.style if piece.style in gen.styles else tk.ANY_STYLE
        sample = sampling(cfg, style=style, seed=cfg.sample_seed + i, variations=cfg.continuations)
        result = gen.generate(seed, sample)
        real = continuation_of(ref, cut)
        made = []
        for score in result.scores:
            cont = continuation_of(score, result.split_tick)
            g = measure(cont, seed, cfg, index)
            g["pc_js_to_real"] = metrics.js_divergence(metrics.pitch_class_histogram(cont, cfg.bars),
                                                       metrics.pitch_class_histogram(real, cfg.bars))
            made.append(g)
        rows.append({"piece": piece.path, "sample_seed": sample.seed, "generated": made,
                     "held_out": measure(real, seed, cfg, index)})
    settings = {**asdict(sampling(cfg)), "style": "each piece's composer",
                "seed": f"{cfg.sample_seed} + piece index", "variations": cfg.continuations}
    generated, real = [g for r in rows for g in r["generated"]], [r["held_out"] for r in rows]
    stats = {k: {"generated": coherence.band([g.get(k) for g in generated]),
                 "held_out": coherence.band([r.get(k) for r in real])}
             for k in STAT_NAMES}
    return {"pieces": len(rows), "continuations_per_piece": cfg.continuations, "skipped_short": skipped,
            "settings": settings, "stats": stats, "coherence": coherence.section(generated, real),
            "per_piece": rows, "seconds": {"copy_index": round(index_s, 1),
                                           "generate_and_measure": round(time.perf_counter() - t0, 1)}}


def measure(cont, seed, cfg: EvalConfig, index: metrics.CopyIndex) -> dict:
    """The music statistics and coherence measures of one continuation (generated or real)."""
    return {**metrics.continuation_stats(cont, cfg.bars, seed, index),
            **coherence.measures(seed, cont, cfg.bars, cfg.seed_bars)}


def evaluate(checkpoint: str | Path = DEFAULT_CHECKPOINT, data: str | list = "",
             cfg: EvalConfig | None = None) -> dict:
    """The whole report as a JSON-ready dict."""
    cfg = cfg or EvalConfig()
    checkpoint = Path(checkpoint)
    model, tokenizer, config = load_checkpoint(checkpoint, "cpu")
    roots = data_root(config, data)
    corpus, _ = load_corpus(roots, tokenizer)
    train, test = split_pieces(corpus.pieces, config, "train"), split_pieces(corpus.pieces, config, cfg.split)
    if cfg.corpus:
        test = [p for p in test if p.corpus == cfg.corpus]
        if not test:
            raise MusicgenError(f"no {cfg.split} pieces from a corpus folder named {cfg.corpus!r}")
    if cfg.pieces:
        test = test[:cfg.pieces]
    t0 = time.perf_counter()
    report = {"checkpoint": str(checkpoint), "data_roots": [str(r) for r in roots], "config": asdict(cfg),
              "train_pieces": len(train), "test_pieces": [p.path for p in test],
              "tokens": token_report(model, tokenizer, train, test, cfg.ngram_order),
              "continuations": continuation_report(checkpoint, tokenizer, train, test, cfg)}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def format_report(report: dict) -> str:
    """The report as plain-text tables."""
    tok = report["tokens"]
    n_tokens = tok["gru"]["tokens"]
    lines = [f"checkpoint {report['checkpoint']}; corpora {', '.join(report['data_roots'])}",
             f"held-out {report['config'].get('split', 'test').upper()} pieces: "
             f"{len(report['test_pieces'])} ({n_tokens:,} tokens); "
             f"baselines fitted on {report['train_pieces']} TRAIN pieces", "",
             f"{'next-token model':<22}{'NLL (nats)':>11}{'ppl':>9}{'top-1':>8}{'top-5':>8}"]
    for name, row in tok.items():
        label = {"gru": "GRU (checkpoint)", "unigram": "unigram (add-1)"}.get(name, f"{name} (mod. KN)")
        lines.append(f"{label:<22}{row['nll']:>11.3f}{row['ppl']:>9.2f}{row['top1']:>8.3f}{row['top5']:>8.3f}")
    if "by_position" in tok["gru"]:
        lines += [""] + format_positions(tok["gru"]["by_position"])
    cont, cfg = report["continuations"], report["config"]
    knobs = cont["settings"]
    per_piece = cont.get("continuations_per_piece", 1)
    lines += ["", f"continuations: {cfg['seed_bars']}-bar openings of {cont['pieces']} held-out pieces -> "
              f"{per_piece} x {cfg['bars']} bars (temperature {knobs['temperature']}, "
              f"top-p {knobs['top_p']}, "
              f"seed = {cfg['sample_seed']} + piece index, "
              f"style = composer); {len(cont['skipped_short'])} shorter pieces skipped",
              *coherence.band_table("statistic", STAT_NAMES, cont["stats"])]
    if "coherence" in cont:
        lines += [""] + coherence.format_section(cont["coherence"], per_piece)
    return "\n".join(lines)


def format_positions(by_position: dict) -> list[str]:
    """The GRU's NLL by position in the piece, over all pieces and per corpus, as table lines."""
    names = list(by_position["all"])
    lines = [f"{'GRU NLL by token position':<28}" + "".join(f"{n:>14}" for n in names)]
    rows = [("all", by_position["all"])] + (list(by_position["corpora"].items())
                                             if len(by_position["corpora"]) > 1 else [])
    for label, buckets in rows:
        cells = [f"{b['nll']:.3f} ({b['pieces']})" if b["nll"] is not None else "-" for b in buckets.values()]
        lines.append(f"{label:<28}" + "".join(f"{c:>14}" for c in cells))
    return lines + ["(mean NLL of the tokens at those positions of their piece; pieces that reach them)"]


def _finite(x):
    """The report with nan as null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and x != x else x


def sampling(cfg: EvalConfig, **overrides):
    """The SampleConfig continuations are made with: the shipped defaults unless overridden."""
    from musicgen.sample import SampleConfig

    knobs = {k: getattr(cfg, k) for k in ("temperature", "top_p") if getattr(cfg, k)}
    for k in ("key_hold", "texture_hold"):
        if getattr(cfg, k) >= 0:
            knobs[k] = getattr(cfg, k)
    return SampleConfig(bars=cfg.bars, **knobs, **overrides)


def main(args) -> int:
    """CLI entry: evaluate, print the tables, write JSON where asked."""
    names = {f.name for f in fields(EvalConfig)}
    cfg = EvalConfig(**{k: v for k, v in vars(args).items() if k in names})
    report = evaluate(getattr(args, "checkpoint", DEFAULT_CHECKPOINT), getattr(args, "data", "") or "", cfg)
    print(format_report(report))
    if getattr(args, "json", None):
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(report), indent=1))
        print(f"wrote {path}")
    return 0
