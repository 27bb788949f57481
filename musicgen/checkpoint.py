"""Checkpoints: a folder with safetensors weights, the tokenizer's JSON and a config JSON.

Everything needed to sample sits in the folder; nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from musicgen.config import restore
from musicgen.errors import MusicgenError
from musicgen.model import GRULM, RETIRED, ModelConfig
from musicgen.resources import MODEL_DIR
from musicgen.tokenizer import load_tokenizer

DEFAULT_CHECKPOINT = MODEL_DIR


def save_checkpoint(folder: str | Path, model: torch.nn.Module, tokenizer, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None, half: bool = False) -> Path:
    """Write model.safetensors, tokenizer.json, config.json (and the optimizer, to resume)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if half:  # fp16 halves the file a Space has to carry; sampling upcasts to fp32
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"))
    tokenizer.save(folder / "tokenizer.json")
    config = {"model": vars(model.cfg).copy(), **meta}
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
    if optimizer is not None:
        tensors, scalars = {}, {}
        for i, st in optimizer.state_dict()["state"].items():
            for name, value in st.items():
                if torch.is_tensor(value) and value.dim() > 0:
                    tensors[f"{i}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{i}.{name}"] = float(value)
        save_file(tensors, str(folder / "optimizer.safetensors"))
        (folder / "optimizer.json").write_text(json.dumps(scalars))
    return folder


def load_checkpoint(folder: str | Path = DEFAULT_CHECKPOINT, device: str = "cpu"):
    """(model in eval mode, tokenizer, config dict) from a checkpoint folder."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise MusicgenError(f"no checkpoint in {folder} (expected model.safetensors there)")
    config = json.loads((folder / "config.json").read_text())
    model = GRULM(restore(ModelConfig, config["model"], RETIRED))
    state = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.to(device).eval()
    return model, load_tokenizer(folder / "tokenizer.json"), config


def load_optimizer_state(folder: str | Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore Adam's moments and step counts saved by save_checkpoint."""
    folder = Path(folder)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    scalars = json.loads((folder / "optimizer.json").read_text())
    sd = optimizer.state_dict()
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(scalars.items()):
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = torch.tensor(value) if name == "step" else value
    sd["state"] = state
    optimizer.load_state_dict(sd)
