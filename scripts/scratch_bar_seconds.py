"""How long a bar lasts when the generator composes from scratch (it picks its own tempo).

Run: `python scripts/scratch_bar_seconds.py [--seeds 6]`. Generates 16 bars from scratch for every
style and seed and prints seconds per bar per style, then the median and quartiles over all:
`app_logic.SCRATCH_SECONDS_PER_BAR` holds the quartiles, so the app's estimate is a range.
"""

from __future__ import annotations

import argparse
import statistics

from musicgen.sample import Generator, SampleConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=6)
    args = ap.parse_args()
    gen, every = Generator(device="cpu"), []
    for style in gen.styles:
        per_bar = [gen.generate(None, SampleConfig(bars=16, style=style, seed=s)).continuation_seconds() / 16
                   for s in range(args.seeds)]
        every += per_bar
        print(f"{style:<12} median {statistics.median(per_bar):.2f} s a bar, "
              f"{min(per_bar):.2f}-{max(per_bar):.2f}")
    q = statistics.quantiles(every, n=4)
    print(f"all {len(every)}: median {q[1]:.2f} s a bar, quartiles {q[0]:.2f}-{q[2]:.2f}, "
          f"range {min(every):.2f}-{max(every):.2f}")


if __name__ == "__main__":
    main()
