"""One cross-validated GRU against the baseline of every cross-validation run: the strongest
baseline any feature setting gave is the one to beat, not only the baseline of its own run.

    python scripts/compare_baselines.py runs/clf-cv-semi2048-ps3 runs/clf-cv-*/

Folds are fixed by the piece paths, so every run holds out the same pieces in the same folds
and McNemar's test pairs them piece by piece.
"""

import argparse
import json
from pathlib import Path

from musicgen.critic.crossval import mcnemar


def hits(run: Path, model: str) -> dict[str, bool]:
    rows = json.loads((run / "crossval.json").read_text())["per_piece"]
    return {r["path"]: r[model] == r["true"] for r in rows}


def main(gru_run: str, runs: list[str]) -> None:
    gru = hits(Path(gru_run), "gru")
    print(f"GRU of {gru_run}: {sum(gru.values())}/{len(gru)} pieces")
    seen = {}
    for run in sorted({str(Path(r)) for r in runs}):
        if not (Path(run) / "crossval.json").is_file():
            continue
        base = hits(Path(run), "baseline")
        if base.keys() != gru.keys():
            print(f"  {run}: other pieces, skipped")
            continue
        key = tuple(base[p] for p in sorted(base))
        if key in seen:  # runs that share a feature setting share a baseline
            print(f"  {run}: the same baseline as {seen[key]}")
            continue
        seen[key] = run
        m = mcnemar([gru[p] for p in sorted(gru)], [base[p] for p in sorted(gru)])
        print(f"  baseline of {run}: {sum(base.values())}/{len(base)}; GRU alone right on "
              f"{m['only_first']}, baseline alone on {m['only_second']}, McNemar p = {m['p_value']:.3g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a cross-validated GRU against every run's baseline")
    parser.add_argument("gru_run", help="the cross-validation run whose GRU is compared")
    parser.add_argument("runs", nargs="*", help="cross-validation runs whose baselines it is compared with")
    args = parser.parse_args()
    main(args.gru_run, args.runs)
