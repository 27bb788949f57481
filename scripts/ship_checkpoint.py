"""Copy a run's checkpoint into assets/model as the app and the CLI load it: fp16 weights,
its tokenizer and config (credits, split, history), no optimizer; ending.json and eval.json stay.

    python scripts/ship_checkpoint.py runs/cand-e20 [--out assets/model]

Then regenerate assets/model/eval.json with `musicgen evaluate ... --json` (README, "Model card").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a run's checkpoint folder (best, last, or a copy of one)")
    parser.add_argument("--out", default=str(DEFAULT_CHECKPOINT))
    args = parser.parse_args(argv)
    model, tokenizer, config = load_checkpoint(args.checkpoint)
    meta = {k: v for k, v in config.items() if k != "model"}
    meta["shipped_from"] = str(Path(args.checkpoint))
    save_checkpoint(args.out, model, tokenizer, meta, half=True)
    print(f"wrote {args.out}: {sum(p.numel() for p in model.parameters()):,} parameters, epoch "
          f"{config.get('epoch')}, from {args.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
