"""Where tensors go: one rule for the generator, its trainer and the critic's trainer."""

from __future__ import annotations

import torch

from musicgen.errors import MusicgenError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto") -> str:
    """CUDA when asked for (or `auto` and present), else CPU; `cuda:1` style names pass through."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.split(":")[0] not in DEVICES[1:]:
        raise MusicgenError(f"unknown device {name!r}: use auto, cpu or cuda")
    return name
