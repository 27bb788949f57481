"""The critic's network: standardised log band power -> a small convolution (or stacked frames) ->
bidirectional GRU -> mean+max pool -> class logits; and several of them averaged as one."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from musicgen.config import restore
from musicgen.errors import MusicgenError

# options since removed, with the value that made them do nothing (config.restore drops them there)
MODEL_RETIRED = {"band_stats": False}  # the baseline's per-band mean and std in the head: no better
MODEL_BEFORE = {"conv": 0}  # a save from before the convolutional front end stacked frames


@dataclass
class ModelConfig:
    n_mels: int = 98  # input bands (FeatureConfig.n_mels)
    stack: int = 4  # frames joined per GRU step (93 ms): 4x fewer sequential steps on a CPU
    n_proj: int = 128  # width of the per-step projection fed to the GRU
    n_hidden: int = 96  # GRU state per direction
    n_layer: int = 2
    dropout: float = 0.3  # ~170 training pieces: the model overfits them without it
    conv: int = 16  # >0: channels of a convolutional front end over (time, band); 0: stack frames
    n_classes: int = 2

    def __post_init__(self):
        for name in ("n_mels", "stack", "n_proj", "n_hidden", "n_layer"):
            if getattr(self, name) < 1:
                raise MusicgenError(f"--{name.replace('_', '-')} must be a positive whole number, "
                                    f"not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise MusicgenError(f"--dropout is a probability in [0, 1), not {self.dropout}")
        if self.conv < 0:
            raise MusicgenError(f"--conv is 0 (stacked frames) or a number of channels, not {self.conv}")
        if self.conv and self.n_mels < 8:
            raise MusicgenError("the convolutional front end pools bands by 8: it needs 8 or more bands")
        if self.n_classes < 2:
            raise MusicgenError(f"a classifier needs at least two classes, not {self.n_classes}")


def load_model_config(saved: dict) -> ModelConfig:
    """ModelConfig of a saved critic or run: retired options at their neutral value are dropped,
    fields it predates take the value it meant."""
    return restore(ModelConfig, {**MODEL_BEFORE, **saved}, MODEL_RETIRED)


class StyleGRU(nn.Module):
    """Standardised log-mel -> stacked frames (or a small convolution) -> bidirectional GRU ->
    mean+max pool -> class logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # training-set statistics per band, saved with the weights so a checkpoint is self-contained
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.front = None
        width = cfg.n_mels * cfg.stack
        if cfg.conv:
            # an octave wide and one GRU step long: the same chord or interval shape is one
            # feature wherever it sits on the keyboard, learnt once instead of per band
            c = cfg.conv
            self.front = nn.Sequential(
                nn.Conv2d(1, c, (cfg.stack, 13), stride=(cfg.stack, 1), padding=(0, 6)), nn.ReLU(),
                nn.MaxPool2d((1, 2)), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 4)))
            width = c * (cfg.n_mels // 2 // 4)
        self.proj = nn.Linear(width, cfg.n_proj)
        self.gru = nn.GRU(cfg.n_proj, cfg.n_hidden, cfg.n_layer, batch_first=True, bidirectional=True,
                          dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(4 * cfg.n_hidden, cfg.n_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) from log-mel clips (B, T, M)."""
        x = (mel - self.feat_mean) / self.feat_std
        B, T, M = x.shape
        steps = max(1, T // self.cfg.stack)
        if T < self.cfg.stack:  # a clip shorter than one step: pad it to one
            x = nn.functional.pad(x, (0, 0, 0, self.cfg.stack - T), value=float(x.min()))
        x = x[:, : steps * self.cfg.stack]
        if self.front is None:
            x = x.reshape(B, steps, M * self.cfg.stack)  # (B, S, M*stack)
        else:
            x = self.front(x[:, None]).transpose(1, 2).flatten(2)  # (B, 1, T, M) -> (B, S, c*M/8)
        x = self.drop(torch.relu(self.proj(x)))  # (B, S, P)
        h, _ = self.gru(x)  # (B, S, 2H)
        pooled = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)  # (B, 4H)
        return self.head(self.drop(pooled))


class StyleEnsemble(nn.Module):
    """Several StyleGRUs (seeds of one recipe) heard as one: their class probabilities averaged.

    A single model's choice swings by a tenth of the pieces from seed to seed; the average of a few
    is steadier and better (docs/CLASSIFIER.md).
    """

    def __init__(self, members: list[StyleGRU]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log of the members' mean probabilities (B, C): a softmax of it gives that mean."""
        logp = torch.stack([m(mel).log_softmax(dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))
