"""Count-based baselines the GRU must beat: a Laplace unigram and an interpolated Kneser-Ney n-gram.

Both read a piece as the GRU does: `[style] + ids`, with the style token as context only, so
the first scored token is the one after the style token and token counts match `split_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from musicgen.errors import MusicgenError

MAX_ORDER = 7  # keys are base-V integers; 390**7 still fits in int64


class Unigram:
    """p(w) = (count(w) + k) / (N + k V): context-free, add-k smoothed."""

    def __init__(self, vocab_size: int, k: float = 1.0):
        self.vocab_size, self.k, self.order = vocab_size, k, 1
        self.p = np.full(vocab_size, 1.0 / vocab_size)

    def fit(self, seqs: Sequence[np.ndarray]) -> Unigram:
        """Count the scored tokens (everything after each sequence's first)."""
        counts = np.zeros(self.vocab_size)
        for seq in seqs:
            counts += np.bincount(np.asarray(seq[1:], dtype=np.int64), minlength=self.vocab_size)
        self.p = (counts + self.k) / (counts.sum() + self.k * self.vocab_size)
        return self

    def probs(self, context: Sequence[int]) -> np.ndarray:
        """The same distribution (V,) whatever came before."""
        return self.p


class KneserNey:
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998) of a given order.

    The highest order uses raw counts, lower orders continuation counts (how many distinct
    tokens precede a k-gram); each order discounts counts of 1, 2 and 3+ by its own amount,
    and order 1 is interpolated with the uniform distribution, so every token of the
    vocabulary keeps some probability and each distribution sums to 1.
    """

    def __init__(self, vocab_size: int, order: int = 5, pad_id: int = 0):
        if not 2 <= order <= MAX_ORDER:
            raise MusicgenError(f"the n-gram order must be between 2 and {MAX_ORDER}, not {order}")
        self.vocab_size, self.order, self.pad_id = vocab_size, order, pad_id
        self.levels: dict[int, dict[str, np.ndarray]] = {}
        self.base = np.full(vocab_size, 1.0 / vocab_size)

    def padded(self, seq: np.ndarray) -> np.ndarray:
        """The sequence behind order-1 pad tokens, so every scored token has a full context."""
        return np.concatenate([np.full(self.order - 1, self.pad_id), np.asarray(seq)]).astype(np.int64)

    def fit(self, seqs: Sequence[np.ndarray]) -> KneserNey:
        """Count every n-gram that ends on a scored token (not on the first token of a sequence)."""
        n, V = self.order, self.vocab_size
        keys = np.concatenate([self._keys(self.padded(s), n)[1:] for s in seqs if len(s) > 1])
        grams, counts = np.unique(keys, return_counts=True)
        for k in range(n, 0, -1):
            if k < n:  # continuation count of a k-gram: distinct (k+1)-grams that end with it
                grams, counts = np.unique(grams % V**k, return_counts=True)
            d = discounts(counts)[np.minimum(counts, 3)]  # each gram's own discount
            ctx, starts = np.unique(grams // V, return_index=True)
            totals = np.add.reduceat(counts, starts).astype(np.float64)
            self.levels[k] = {"ctx": ctx, "starts": np.append(starts, len(grams)), "words": grams % V,
                              "kept": counts - d,  # discounted counts, >= 0
                              "totals": totals, "backoff": np.add.reduceat(d, starts) / totals}
        lvl = self.levels[1]
        self.base = lvl["backoff"][0] / V + np.zeros(V)
        self.base[lvl["words"]] += lvl["kept"] / lvl["totals"][0]
        return self

    def probs(self, context: Sequence[int]) -> np.ndarray:
        """p(. | the last order-1 tokens of context) over the whole vocabulary, (V,)."""
        ctx = [int(t) for t in context[len(context) - (self.order - 1):]]
        ctx = [self.pad_id] * (self.order - 1 - len(ctx)) + ctx
        p = self.base.copy()
        key = 0
        for k in range(2, self.order + 1):
            key += ctx[-(k - 1)] * self.vocab_size ** (k - 2)  # the context grows to the left
            lvl = self.levels[k]
            i = np.searchsorted(lvl["ctx"], key)
            if i == len(lvl["ctx"]) or lvl["ctx"][i] != key:
                break  # an unseen context has no longer seen extension either
            lo, hi = lvl["starts"][i], lvl["starts"][i + 1]
            p *= lvl["backoff"][i]
            p[lvl["words"][lo:hi]] += lvl["kept"][lo:hi] / lvl["totals"][i]
        return p

    def _keys(self, seq: np.ndarray, k: int) -> np.ndarray:
        """Base-V integer of every k-gram of seq, (len - k + 1,)."""
        win = np.lib.stride_tricks.sliding_window_view(seq, k)
        key = np.zeros(len(win), dtype=np.int64)
        for j in range(k):
            key = key * self.vocab_size + win[:, j]
        return key


def discounts(counts: np.ndarray) -> np.ndarray:
    """[0, D1, D2, D3+] from the count-of-counts n1..n4 (Chen & Goodman's estimates)."""
    n1, n2, n3, n4 = (int((counts == c).sum()) for c in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):  # too few counts to estimate: a plain 0.5 at every count
        return np.array([0.0, 0.5, 0.5, 0.5])
    y = n1 / (n1 + 2 * n2)
    d = np.array([0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    return np.clip(d, 0.0, [0, 1, 2, 3])  # never discount more than the count itself


def score(lm, seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token NLL (nats), top-1 and top-5 hits of every token after each sequence's first."""
    nll, top1, top5 = [], [], []
    for seq in seqs:
        seq = np.asarray(seq, dtype=np.int64)
        for t in range(1, len(seq)):
            p = lm.probs(seq[max(0, t - lm.order + 1):t])
            target = seq[t]
            best = np.argsort(-p, kind="stable")[:5]
            nll.append(-math.log(p[target]))
            top1.append(best[0] == target)
            top5.append(target in best)
    return np.array(nll), np.array(top1, bool), np.array(top5, bool)


def summary(nll: np.ndarray, top1: np.ndarray, top5: np.ndarray) -> dict[str, float]:
    """Token-weighted means in the shape `evaluate.split_metrics` returns."""
    return {"nll": float(nll.mean()), "ppl": float(math.exp(nll.mean())), "top1": float(top1.mean()),
            "top5": float(top5.mean()), "tokens": int(len(nll))}


def main(argv: list[str] | None = None) -> int:
    """`python -m musicgen.baselines`: the n-gram order chosen on the checkpoint's VALIDATION pieces."""
    import argparse

    from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from musicgen.data import data_root, load_corpus, split_pieces, with_style

    parser = argparse.ArgumentParser(prog="python -m musicgen.baselines", description=main.__doc__)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--data", default="", help="default: the checkpoint's corpus")
    parser.add_argument("--orders", default="3,4,5,6,7")
    args = parser.parse_args(argv)
    _, tokenizer, config = load_checkpoint(args.checkpoint)
    corpus, _ = load_corpus(data_root(config, args.data), tokenizer)
    fit = [with_style(p, tokenizer) for p in split_pieces(corpus.pieces, config, "train")]
    val = [with_style(p, tokenizer) for p in split_pieces(corpus.pieces, config, "val")]
    print(f"{'order':<8}{'val NLL':>9}{'ppl':>8}{'top-1':>8}{'top-5':>8}   ({len(val)} validation pieces)")
    for order in [int(o) for o in args.orders.split(",")]:
        m = summary(*score(KneserNey(len(tokenizer.vocab), order, tokenizer.pad_token_id).fit(fit), val))
        print(f"{order:<8}{m['nll']:>9.4f}{m['ppl']:>8.2f}{m['top1']:>8.3f}{m['top5']:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
