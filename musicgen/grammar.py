"""REMI's grammar as the sampler keeps it: which token may come next in each row.

Masking the logits with it is why every output decodes to valid MIDI with zero token errors
at any temperature; it also holds a meter and a tempo where asked.
"""

from __future__ import annotations

import numpy as np

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError

MAX_TOKENS_PER_BAR = 512  # a bar this dense is forced to end: generation always terminates


class Grammar:
    """Which token may follow: REMI's type order, rising positions, no pitch twice at a time."""

    NEXT = {"Style": {"Bar"}, "Bar": {"TimeSig"}, "TimeSig": {"Position", "Bar"},
            "Position": {"Tempo", "Pitch"}, "Tempo": {"Pitch", "Position", "Bar"},
            "Pitch": {"Velocity"}, "Velocity": {"Duration"}, "Duration": {"Pitch", "Position", "Bar"}}

    def __init__(self, tokenizer):
        vocab = tokenizer.vocab
        n = len(vocab)
        self.types = [""] * n
        for token, i in vocab.items():
            self.types[i] = token.split("_", 1)[0]
        self.type_mask = {t: np.array([x == t for x in self.types]) for t in set(self.types)}
        self.allowed = {t: np.logical_or.reduce([self.type_mask.get(x, np.zeros(n, bool)) for x in nxt])
                        for t, nxt in self.NEXT.items()}
        self.bar_id = vocab["Bar_None"]
        self.bar_only_ids = self.type_mask["Bar"].nonzero()[0]
        self.cache: dict[tuple, np.ndarray] = {}  # grammar state -> allowed ids: few hundred states
        pos = sorted((int(t.split("_")[1]), i) for t, i in vocab.items() if t.startswith("Position_"))
        self.pos_ids = np.array([i for _, i in pos])  # index = position value
        self.position = {i: int(t.split("_")[1]) for t, i in vocab.items() if t.startswith("Position_")}
        self.bar_len = {i: int(t[8:].split("/")[0]) * tk.POSITIONS_PER_BEAT
                        for t, i in vocab.items() if t.startswith("TimeSig_")}
        self.meters = {t[8:]: i for t, i in vocab.items() if t.startswith("TimeSig_")}
        self.tempo_mask = self.type_mask.get("Tempo", np.zeros(n, bool))
        self.pitch_class = np.full(n, -1, dtype=np.int64)  # of each Pitch token; -1 for the others
        for t, i in vocab.items():
            if t.startswith("Pitch_"):
                self.pitch_class[i] = int(t.split("_")[1]) % 12
        self.pitch_ids = np.flatnonzero(self.pitch_class >= 0)

    def meter_id(self, meter: str) -> int:
        """The TimeSig id of "9/8"; a meter the tokenizer lacks is refused, naming the ones it has."""
        if meter.strip() not in self.meters:
            known = sorted(self.meters, key=lambda m: (int(m.split("/")[1]), int(m.split("/")[0])))
            raise MusicgenError(f"this model knows no {meter} meter; choose one of: {', '.join(known)}")
        return self.meters[meter.strip()]

    def last_bars(self, ids: list[int], bars: int = 8) -> tuple[np.ndarray, int]:
        """The token ids of the last `bars` bars of `ids` (all of them with fewer bars) and how many
        bars that is."""
        ids = np.asarray(ids, dtype=np.int64)
        bar_at = np.flatnonzero(ids == self.bar_id)
        return (ids[bar_at[-bars]:] if len(bar_at) >= bars else ids), min(len(bar_at), bars)

    def notes_per_bar(self, ids: list[int], bars: int = 8) -> float:
        """Notes per bar over the last `bars` bars of `ids` (0 without a bar)."""
        window, n = self.last_bars(ids, bars)
        return float((self.pitch_class[window] >= 0).sum()) / n if n else 0.0

    def key_bias(self, ids: list[int], strength: float, bars: int = 8) -> np.ndarray | None:
        """Logit offsets (V,) that keep a continuation near the pitch classes of the last `bars`
        bars of `ids`: strength * log((n_c + 1) / (n_max + 1)) on each Pitch token of class c, where
        n_c counts that class's notes there; 0 for the most used class and for every other token.
        None when strength is 0 or there are no notes to read a key from."""
        if not strength:
            return None
        pcs = self.pitch_class[self.last_bars(ids, bars)[0]]
        return self.class_bias(np.bincount(pcs[pcs >= 0], minlength=12).astype(np.float64), strength)

    def class_bias(self, counts: np.ndarray, strength: float) -> np.ndarray | None:
        """key_bias for given pitch-class counts (12,); None when strength is 0 or the counts are."""
        if not strength or not counts.sum():
            return None
        bias = np.zeros(len(self.types), dtype=np.float32)
        is_pitch = self.pitch_class >= 0
        bias[is_pitch] = strength * np.log((counts[self.pitch_class[is_pitch]] + 1) / (counts.max() + 1))
        return bias


class TextureHold:
    """Keeps a continuation's notes per bar near its seed's: wherever a note may be added at the
    current position (after a Duration or Tempo), every Pitch logit moves by
    strength * log((target * elapsed + 4) / (played + 4)), clipped to +-3, where `elapsed` is the
    bars written so far (fractions included) and `played` the notes in them. Behind the seed's
    density the next note is likelier, ahead of it the bar moves on; at strength 0 nothing moves."""

    SLACK = 4.0  # notes: the first bar is not pushed hard by one note more or less
    LIMIT = 3.0

    def __init__(self, g: Grammar, prime: list[int], strength: float, bars: int = 8):
        self.g, self.strength = g, strength
        self.target = g.notes_per_bar(prime, bars) if strength else 0.0

    @property
    def active(self) -> bool:
        return bool(self.strength and self.target)

    def offset(self, row: RowState, start_bars: int, played: int) -> float:
        """The Pitch logit offset for `row` now (0 where no note can follow)."""
        if row.prev not in ("Duration", "Tempo"):
            return 0.0
        elapsed = row.bars - start_bars - 1 + max(row.pos, 0) / row.bar_len
        d = self.strength * np.log((self.target * elapsed + self.SLACK) / (played + self.SLACK))
        return float(np.clip(d, -self.LIMIT, self.LIMIT))


class RowState:
    """Where one sequence stands in the grammar."""

    def __init__(self, g: Grammar):
        self.prev = "Style"
        self.pos, self.bar_len, self.ts_id = -1, 4 * tk.POSITIONS_PER_BEAT, None
        self.struck: list[int] = []  # pitch ids already played at this position
        self.bars, self.in_bar, self.bar_notes = 0, 0, 0
        self.hold_tempo, self.has_tempo = False, False  # once a tempo is set, no Tempo token follows
        self.ban = bytearray(len(g.types))  # 1 for the struck pitches: cheap to set from Python
        self.banned = np.frombuffer(self.ban, dtype=np.uint8)  # the same bytes, for `draw`

    def copy(self, g: Grammar) -> RowState:
        other = RowState(g)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("ban", "banned")})
        other.struck = list(self.struck)
        other.ban[:] = self.ban
        return other

    def update(self, g: Grammar, tok: int) -> None:
        kind = g.types[tok]
        if kind == "Pitch":
            self.struck.append(tok)
            self.ban[tok] = 1
            self.bar_notes += 1
        elif kind in ("Bar", "Position"):
            for p in self.struck:
                self.ban[p] = 0
            self.struck = []
            if kind == "Bar":
                self.bars, self.pos, self.in_bar, self.bar_notes = self.bars + 1, -1, 0, 0
            else:
                self.pos = g.position[tok]
        elif kind == "TimeSig":
            self.ts_id, self.bar_len = tok, g.bar_len[tok]
        elif kind == "Tempo":
            self.has_tempo = True
        if kind in Grammar.NEXT:
            self.prev = kind
        self.in_bar += 1

    def allowed(self, g: Grammar) -> np.ndarray:
        """Sorted ids of the tokens that may come next, before the struck pitches are banned."""
        if self.in_bar > MAX_TOKENS_PER_BAR and self.prev in ("Duration", "TimeSig", "Tempo"):
            return g.bar_only_ids
        key = (self.prev, self.ts_id if self.prev == "Bar" else None, self.pos, self.bar_len,
               self.hold_tempo and self.has_tempo, self.bars == 1 and not self.bar_notes)
        ids = g.cache.get(key)
        if ids is None:
            ids = g.cache[key] = self._allowed_ids(g)
        return ids

    def _allowed_ids(self, g: Grammar) -> np.ndarray:
        m = g.allowed[self.prev].copy()
        if self.prev == "Bar" and self.ts_id is not None:  # keep the meter once it is set
            m[:] = False
            m[self.ts_id] = True
        if self.bars == 1 and not self.bar_notes:  # a piece from scratch opens with music, not a rest
            m[g.bar_id] = False
        m[g.pos_ids[:self.pos + 1]] = False
        m[g.pos_ids[self.bar_len:]] = False
        if self.hold_tempo and self.has_tempo:
            m[g.tempo_mask] = False
        return m.nonzero()[0]
