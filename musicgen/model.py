"""The generator, a stateful stacked GRU language model, and the seed paper's windowed BiGRU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from musicgen.errors import MusicgenError


@dataclass
class ModelConfig:
    vocab_size: int = 0  # set from the tokenizer
    n_embd: int = 256  # token embedding width
    n_hidden: int = 512  # GRU width per layer (per direction in the paper's BiGRU); the shipped model's
    n_layer: int = 2  # stacked GRU layers
    dropout: float = 0.2  # between GRU layers and before the head, as in the seed paper
    pad_id: int = 0  # targets equal to this are ignored by the loss

    def __post_init__(self):
        if min(self.n_embd, self.n_hidden, self.n_layer) < 1 or self.vocab_size < 0:
            raise MusicgenError("--n-embd, --n-hidden and --n-layer must be at least 1")
        if not 0 <= self.dropout < 1:
            raise MusicgenError(f"--dropout must be in [0, 1), not {self.dropout}")


# options of earlier versions, and the values at which they changed nothing (config.restore)
RETIRED = {"arch": "gru", "window": 40}


class _EmbedGRUHead(nn.Module):
    """The layers both generators share: embedding, stacked GRU, dropout, linear head."""

    def __init__(self, cfg: ModelConfig, bidirectional: bool = False):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.gru = nn.GRU(cfg.n_embd, cfg.n_hidden, cfg.n_layer, batch_first=True,
                          bidirectional=bidirectional, dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.n_hidden * (2 if bidirectional else 1), cfg.vocab_size)


class GRULM(_EmbedGRUHead):
    """Embedding -> N GRU layers -> linear head; the hidden state carries the whole past."""

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                h: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, V), mean loss over non-pad targets or None, h (L, B, H)."""
        x = self.embed(idx)  # (B, T, E)
        y, h = self.gru(x, h)  # (B, T, H)
        logits = self.head(self.drop(y))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                   ignore_index=self.cfg.pad_id)
        return logits, loss, h

    def step(self, idx: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per row: idx (B,) -> logits (B, V), new h. Costs one GRU step, not a re-read."""
        y, h = self.gru(self.embed(idx)[:, None, :], h)  # (B, 1, H)
        return self.head(y[:, 0]), h


class GRUStep:
    """GRULM.step for generation: the same numbers (to 1e-5) from half the tensor ops.

    At batch 1 nn.GRU's step is five small matrix products (about 100 of its 183 µs here) and
    the dispatch of some 150 ops of slicing and bookkeeping around them. Here the embedding and
    layer 0's input projection are one table, so a token's input gates are a row lookup, and
    each layer is the GRU equations written out: 76 ops a step. Built from the weights as they
    are now, for inference.
    """

    def __init__(self, model: GRULM):
        g, self.H = model.gru, model.gru.hidden_size
        w = {name: p.detach() for name, p in g.named_parameters()}
        with torch.no_grad():
            self.table = F.linear(model.embed.weight, w["weight_ih_l0"], w["bias_ih_l0"])  # (V, 3H)
        self.layers = [(w[f"weight_ih_l{i}"].t() if i else None, w[f"bias_ih_l{i}"] if i else None,
                        w[f"weight_hh_l{i}"].t(), w[f"bias_hh_l{i}"]) for i in range(g.num_layers)]
        self.head = (model.head.weight.detach().t(), model.head.bias.detach())

    def __call__(self, idx: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """idx (B,) -> logits (B, V), new h (L, B, H), as GRULM.step."""
        H, x = self.H, F.embedding(idx, self.table)
        if h is None:
            h = x.new_zeros(len(self.layers), len(idx), H)
        out = []
        for i, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
            gi = x if w_ih is None else torch.addmm(b_ih, x, w_ih)  # layer 0's is in the table
            gh = torch.addmm(b_hh, h[i], w_hh)
            rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])  # reset and update gates
            n = torch.tanh(torch.addcmul(gi[:, 2 * H:], rz[:, :H], gh[:, 2 * H:]))
            x = torch.lerp(n, h[i], rz[:, H:])  # (1 - z) * n + z * h
            out.append(x)
        return torch.addmm(self.head[1], x, self.head[0]), torch.stack(out)


class BiGRUWindow(_EmbedGRUHead):
    """The seed paper's model: stacked bidirectional GRU over the last `window` tokens.

    Only musicgen.paper trains it (to test the paper's claim) and the bench times it (the cost a
    window model pays per token); it cannot be a shipped generator.
    """

    def __init__(self, cfg: ModelConfig, window: int = 40):
        super().__init__(cfg, bidirectional=True)
        self.window = window  # tokens read to predict the next one (the paper's 40 notes)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, h=None):
        """idx (B, W) -> logits (B, V) for the token after the window; loss if targets (B,)."""
        _, h_n = self.gru(self.embed(idx))  # h_n (2L, B, H)
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # both directions of the top layer
        logits = self.head(self.drop(last))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float(), targets, ignore_index=self.cfg.pad_id)
        return logits, loss, None

    def step(self, window: torch.Tensor, h=None) -> tuple[torch.Tensor, None]:
        """Re-read the whole window (B, W) for every new token: the cost we compare against."""
        return self.forward(window)[0], None


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())

