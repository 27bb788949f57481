"""Where a generated token's time goes at batch 1, measured inside the real sampling loop.

Run: `python scripts/sampling_breakdown.py [--runs 7] [--module-step]`. For each random seed it generates
16 bars from the first example seed four ways and prints the median µs per new token:
  loop          the real loop (GRU step, pick, grammar, bookkeeping), as `bench` times it
  - pick        the same loop with `pick` replaced by a replay of the tokens it chose
  - allowed     ... and the grammar's allowed-ids lookup replaced by a constant
  bare step     `bench.gru_ceiling` for as many steps
and the same `pick` calls replayed alone, in a tight loop (its cost with warm caches).
The differences are what each part costs where it runs: after a GRU step. --module-step
uses `nn.GRU`'s step (GRULM.step) instead of the generator's GRUStep, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import musicgen.sample as sample
from musicgen.bench import example_seed, gru_ceiling
from musicgen.grammar import RowState
from musicgen.sample import Generator, SampleConfig


def per_token_us(gen: Generator, seed, cfg: SampleConfig) -> tuple[float, list[int]]:
    res = gen.generate(seed, cfg)
    return 1e6 * res.sample_seconds / res.new_tokens, res.tokens[0][-res.new_tokens:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--module-step", action="store_true", help="time GRULM.step instead of GRUStep")
    args = ap.parse_args()
    gen, seed = Generator(device="cpu"), example_seed()
    if args.module_step:
        gen.step = gen.model.step
    gen.generate(seed)  # warm-up
    rows = {k: [] for k in ("loop", "- pick", "- pick - allowed", "bare step", "pick alone")}
    for r in range(args.runs):
        cfg = SampleConfig(bars=16, seed=r)
        us, new = per_token_us(gen, seed, cfg)
        rows["loop"].append(us)
        replay = new + [gen.grammar.bar_id]  # the bar token that ends the loop is picked, not kept

        def replayed(logits, allowed, banned, cfg, u, history, replay=replay):
            return [replay[len(history[0])]]

        with mock.patch.object(sample, "pick", replayed):
            rows["- pick"].append(per_token_us(gen, seed, cfg)[0])
            with mock.patch.object(RowState, "allowed", lambda self, g: g.bar_only_ids):
                rows["- pick - allowed"].append(per_token_us(gen, seed, cfg)[0])
        rows["bare step"].append(1e6 / gru_ceiling(gen.step, "cpu", len(new)))
        calls = []

        def recording(logits, allowed, banned, cfg, u, history, real=sample.pick, calls=calls):
            calls.append((logits.copy(), list(allowed), [b.copy() for b in banned], cfg, u,
                          [list(h) for h in history]))  # the loop reuses or overwrites them
            return real(logits, allowed, banned, cfg, u, history)

        with mock.patch.object(sample, "pick", recording):
            gen.generate(seed, cfg)
        t0 = time.perf_counter()
        for a in calls:
            sample.pick(*a)
        rows["pick alone"].append(1e6 * (time.perf_counter() - t0) / len(new))
    for name, values in rows.items():
        print(f"{name:<18} {statistics.median(values):7.1f} µs/token")


if __name__ == "__main__":
    main()
