"""Sampling: prime the GRU's hidden state with a seed, then add one token per step.

Decoding follows REMI's grammar (a mask of the tokens that may come next), so every
output decodes to valid MIDI with zero token errors at any temperature.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import symusic
import torch

from musicgen import tokenizer as tk
from musicgen.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from musicgen.config import check_number
from musicgen.device import pick_device
from musicgen.draw import NO_IDS, draw
from musicgen.ending import hold_last_chord
from musicgen.errors import MusicgenError
from musicgen.grammar import MAX_TOKENS_PER_BAR, Grammar, RowState, TextureHold
from musicgen.keys import key_signature, parse_key, scale_counts, seed_key
from musicgen.model import GRUStep

MAX_SEED_TOKENS = 16384  # about 4,500 notes; longer seeds keep their last bars only
MAX_SEED_NOTES = 6000  # a seed is cut to the bars of its last 6,000 notes before it is even tokenized
MAX_BARS = 256
MAX_SILENT_BARS = 4  # a longer rest inside a seed is cut to this; a 4.6-hour one would be 8,000 bars
MAX_VARIATIONS = 64  # one batch; the app asks for at most logic.MAX_VARIATIONS
MAX_ROWS = 256  # variations x candidates sampled as one batch (--end, infill)
TEMPO_OVERRIDE_RANGE = (20.0, 400.0)  # quarter notes per minute a user may ask for
# no seed to lean on: takes in the asked key (K-S), 6 keys x 4 from scratch: 11 of 24 at 1x, 22 at 4x
SCRATCH_KEY_HOLD = 4.0


@dataclass
class SampleConfig:
    bars: int = 16  # length of the continuation in bars
    seed_bars: int = 0  # prime with only the seed's last N bars; 0: the whole seed
    style: str = "any"  # composer to imitate (see `styles`), or any
    temperature: float = 0.9  # <1 safer, >1 wilder; 0.9 chosen on the validation pieces
    top_k: int = 0  # sample among the k likeliest tokens; 0: off
    top_p: float = 1.0  # nucleus: the smallest set with this much probability; 1: off (below 1 the
    # texture thins: at 0.9, 12% of validation continuations ran 8+ bars as one line, at 1.0 2%)
    greedy_mix: float = 0.0  # take the argmax with this probability instead of sampling
    repetition_penalty: float = 1.0  # >1 discourages pitches played in the last window
    repetition_window: int = 64  # tokens the repetition penalty looks back over
    variations: int = 1  # continuations sampled together as one batch
    seed: int = 0  # random seed: same seed and settings give byte-identical MIDI
    tempo: float = 0.0  # override the tempo (quarter notes per minute); 0: keep
    vary_tempo: bool = False  # let the model change tempo; off: the seed's holds (scratch: its first pick)
    key_hold: float = 0.5  # pull pitches toward the classes of the seed's last 8 bars (Grammar.key_bias);
    # 0: off. 0.5 chosen on the validation pieces: unrelated keys 38% -> 17% (docs/RESULTS.md)
    texture_hold: float = 0.0  # keep the seed's notes per bar (grammar.TextureHold); 0: off
    end: bool = False  # end the piece: the last bar closes (musicgen.ending picks among `candidates`)
    candidates: int = 16  # with --end and for infill: takes sampled per variation, the best kept
    key: str = ""  # from scratch: the key to write in ("A major", "F# minor"); "": the model's pick
    meter: str = ""  # from scratch: the meter ("3/4", "9/8"); "": the model's pick for the style

    def __post_init__(self):
        """Reject settings that cannot work, with a sentence naming the setting and its range (the
        style is checked against the checkpoint's styles by check_config)."""
        for name, (lo, hi, whole, *also) in LIMITS.items():
            setattr(self, name, check_number(name.replace("_", "-"), getattr(self, name), lo, hi, whole,
                                             tuple(also)))
        if self.end:
            self.check_rows("--end")
        if self.key:
            parse_key(self.key)  # refused here, with the forms it takes
        if self.meter and not re.fullmatch(r"\d{1,2}/\d{1,2}", str(self.meter).strip()):
            raise MusicgenError(f"meter must be like 3/4 or 9/8, not {self.meter!r}")

    def check_rows(self, what: str) -> None:
        """Where `candidates` takes per variation are sampled as one batch: refuse a batch too big."""
        if self.variations * self.candidates > MAX_ROWS:
            raise MusicgenError(f"with {what}, variations x candidates may be at most {MAX_ROWS} "
                                f"(one batch), not {self.variations} x {self.candidates}")


# what SampleConfig accepts: field: (lowest, highest, whole number?, values allowed besides)
LIMITS = {
    "bars": (1, MAX_BARS, True),
    "seed_bars": (0, 100_000, True),
    "temperature": (0, 10, False),
    "top_k": (0, 100_000, True),
    "top_p": (0.01, 1, False),
    "greedy_mix": (0, 1, False),
    "repetition_penalty": (0.1, 10, False),
    "repetition_window": (1, 4096, True),
    "variations": (1, MAX_VARIATIONS, True),
    "seed": (0, 2**32 - 1, True),
    "candidates": (1, MAX_ROWS, True),
    "key_hold": (0, 10, False),
    "texture_hold": (0, 10, False),
    "tempo": (*TEMPO_OVERRIDE_RANGE, False, 0),  # 0 keeps the seed's tempo
}


@dataclass
class Generation:
    scores: list[symusic.Score]  # seed bars + continuation, one per variation
    split_tick: int  # where the continuation (or the filled bars) starts (ticks of scores[i])
    new_tokens: int
    seconds: float  # the whole call: reading the seed, priming, sampling, decoding
    device: str
    tokens: list[list[int]]  # seed + new token ids per variation
    notes: list[str] = field(default_factory=list)  # things the user should know
    prime_seconds: float = 0.0  # reading the seed into the hidden state
    sample_seconds: float = 0.0  # the token loop alone: one GRU step and one pick per new token
    fill_end_tick: int | None = None  # infill: where the filled bars end; None for a continuation

    def midi_bytes(self, only_continuation: bool = False) -> list[bytes]:
        """Standard MIDI files, whole or continuation only."""
        scores = [continuation_of(s, self.split_tick) for s in self.scores] if only_continuation \
            else self.scores
        return [tk.to_midi_bytes(s) for s in scores]

    def continuation_seconds(self) -> float:
        """Length of the first variation's new bars in seconds."""
        s = self.scores[0]
        end = self.fill_end_tick if self.fill_end_tick is not None else s.end()
        t = tk.tick_to_seconds(s, np.array([self.split_tick, end]))
        return float(t[1] - t[0])

    def describe(self) -> str:
        """One line: what was made, how fast, where."""
        rate = self.new_tokens / max(self.seconds, 1e-9)
        line = (f"{len(self.scores)} variation(s), ~{self.continuation_seconds():.1f} s of new music; "
                f"{self.new_tokens} tokens in {self.seconds:.2f} s ({rate:,.0f} tok/s) on {self.device}")
        return "; ".join([line] + self.notes)


class Generator:
    """A loaded checkpoint that composes."""

    def __init__(self, checkpoint: str | Path = DEFAULT_CHECKPOINT, device: str | None = None):
        self.device = pick_device(device or "auto")
        if self.device == "cpu":
            # A GRU step is a few small matmuls: one thread is as fast as two, and two threads
            # spin against any other busy process (measured: 63 instead of 7,000 tok/s).
            torch.set_num_threads(1)
        self.checkpoint = Path(checkpoint)
        self.model, self.tokenizer, self.config = load_checkpoint(checkpoint, self.device)
        self.step = GRUStep(self.model)  # model.step's numbers in three quarters of the time
        self.grammar = Grammar(self.tokenizer)
        self.styles = tk.styles_of(self.tokenizer)

    def seed_tokens(self, seed, seed_bars: int = 0) -> tuple[list[int], list[str]]:
        """Token ids of a seed (path, bytes or Score), trimmed to its last bars where asked."""
        notes = []
        score = tk.read_midi(seed)
        onsets = np.sort(np.concatenate([t.notes.numpy()["time"] for t in score.tracks
                                         if len(t.notes) and not t.is_drum] or [np.zeros(0, np.int64)]))
        long = len(onsets) > MAX_SEED_NOTES  # only the last bars can prime: read no more than them
        if long:
            first = int(onsets[-MAX_SEED_NOTES])
            starts = tk.bar_starts(score, first + 1)
            score = clip_from(score, int(starts[starts <= first][-1]))
        score = tk.prepare(score)
        if score.note_num() == 0:
            raise MusicgenError("the seed has no playable piano notes (drum tracks are ignored); "
                                "leave the seed empty to compose from scratch")
        score, silent = tk.drop_silent_bars(score, MAX_SILENT_BARS)
        if silent:
            notes.append(f"{silent} silent bars of the seed were left out (no more than {MAX_SILENT_BARS} "
                         "in a row are kept)")
        starts = tk.bar_starts(score)
        if seed_bars and len(starts) > seed_bars:
            score = clip_from(score, int(starts[-seed_bars]))
        ids = tk.encode(self.tokenizer, score)
        if len(ids) > MAX_SEED_TOKENS:
            bars = [i for i, t in enumerate(ids) if t == self.grammar.bar_id]
            ids = ids[next((b for b in bars if len(ids) - b <= MAX_SEED_TOKENS), bars[-1]):]
            long = True
        if long:
            kept = sum(1 for t in ids if t == self.grammar.bar_id)
            notes.append(f"the seed was long: only its last {kept} bars primed the model")
        return ids, notes

    @torch.no_grad()
    def generate(self, seed=None, cfg: SampleConfig | None = None) -> Generation:
        """Continue `seed` (None: from scratch) by cfg.bars bars, cfg.variations times."""
        cfg = cfg or SampleConfig()
        check_config(cfg, self.styles)
        t0 = time.perf_counter()
        seed = tk.read_midi(seed) if seed is not None else None  # once: its key is read below too
        seed_ids, notes = self.seed_tokens(seed, cfg.seed_bars) if seed is not None else ([], [])
        prime = [self.tokenizer.vocab[tk.style_token(cfg.style)]] + seed_ids
        meter = self.grammar.meter_id(cfg.meter) if cfg.meter and seed is None else None
        if seed is not None and (cfg.key or cfg.meter):
            notes.append("the seed's key and meter are kept (key and meter apply from scratch)")
        if not cfg.end:
            run = self.sample_after(prime, cfg, cfg.variations, meter)
        elif cfg.bars > 1:  # --end: the last bar comes after
            run = self.sample_after(prime, replace(cfg, bars=cfg.bars - 1), cfg.variations, meter)
        else:
            run = Sampled([[] for _ in range(cfg.variations)], 0, None, None, 0.0, 0.0)
        if cfg.end:  # the last bar, `candidates` times after each variation: the one that ends it best
            run.new = self._endings(prime, seed_ids, run.new, cfg)
        run.seed_bars = sum(1 for t in seed_ids if t == self.grammar.bar_id)
        tokens = [seed_ids + row for row in run.new]
        scores = [tk.decode(self.tokenizer, ids) for ids in tokens]
        if cfg.end:
            last = run.seed_bars + cfg.bars - 1
            scores = [hold_last_chord(s, last) for s in scores]
        starts = tk.bar_starts(scores[0], scores[0].end() + 1)
        split = int(starts[min(run.seed_bars, len(starts) - 1)]) if run.seed_bars else 0
        if cfg.tempo:
            for s in scores:
                s.tempos = [symusic.Tempo(0, float(cfg.tempo))]
        elif seed is None and not cfg.vary_tempo:  # the one tempo the model chose, from the start
            for s in scores:
                s.tempos = [symusic.Tempo(0, s.tempos[-1].qpm)] if len(s.tempos) else []
        # the tokens carry no key: the seed's, the asked one, or (from scratch) the one the notes suggest
        given = seed_key(seed) if seed is not None else key_signature(cfg.key) if cfg.key else None
        for s in scores:
            key = given if seed is not None or cfg.key else seed_key(s)
            s.key_signatures = [key] if key else []
        if seed is None:
            notes.append(f"composed from scratch in the style: {cfg.style}")
        if cfg.end:
            notes.append(f"ended: the last bar is the best closing of {cfg.candidates} tried")
        return Generation(scores, split, sum(len(r) for r in run.new), time.perf_counter() - t0,
                          self.device, tokens, notes, prime_seconds=run.prime_seconds,
                          sample_seconds=run.sample_seconds)

    @torch.no_grad()
    def sample_after(self, prime: list[int], cfg: SampleConfig, batch: int, meter: int | None = None,
                     keep_state: bool = False) -> Sampled:
        """`batch` rows of cfg.bars new bars after the token ids `prime` (style token first); the
        meter token `meter` (a TimeSig id) holds for them where given, else the prime's last one."""
        rows = [RowState(self.grammar)]
        rows[0].hold_tempo = not cfg.vary_tempo
        for t in prime[1:]:
            rows[0].update(self.grammar, t)
        if meter is not None:
            rows[0].ts_id, rows[0].bar_len = meter, self.grammar.bar_len[meter]
        rows += [rows[0].copy(self.grammar) for _ in range(batch - 1)]
        seed_bars = rows[0].bars
        t0 = time.perf_counter()
        logits, h = self._prime(prime, batch)
        t1 = time.perf_counter()
        bias = self.grammar.key_bias(prime, cfg.key_hold)
        if bias is None and cfg.key:  # from scratch in a named key: held as if a seed were in it, firmer
            counts = scale_counts(*parse_key(cfg.key)[:2])
            bias = self.grammar.class_bias(counts, SCRATCH_KEY_HOLD * cfg.key_hold)
        texture = TextureHold(self.grammar, prime, cfg.texture_hold)
        new, h_end, lp_bar = self._sample(logits, h, rows, cfg, seed_bars, keep_state, bias, texture)
        return Sampled(new, seed_bars, h_end, lp_bar, t1 - t0, time.perf_counter() - t1)

    def _endings(self, prime: list[int], seed_ids: list[int], bodies: list[list[int]],
                 cfg: SampleConfig) -> list[list[int]]:
        """Each variation's new bars with a last bar added: of cfg.candidates sampled after them, the
        one the ending model (musicgen.ending) finds most final (ties: the first)."""
        from musicgen.ending import load_ending

        model = load_ending(self.checkpoint)
        out = []
        for v, body in enumerate(bodies):
            last = self.sample_after(prime + body, replace(cfg, bars=1, seed=(cfg.seed + 1 + v) % 2**32),
                                     cfg.candidates)
            takes = [body + row for row in last.new]
            fit = [model.score(tk.decode(self.tokenizer, seed_ids + t), last.seed_bars) for t in takes]
            out.append(takes[max(range(len(takes)), key=lambda i: (fit[i], -i))])
        return out

    def _prime(self, prime: list[int], B: int) -> tuple[np.ndarray, torch.Tensor]:
        """Read the style token and the seed in one pass: next-token logits (B, V), state (L, B, H)."""
        logits, _, h = self.model(torch.tensor([prime], device=self.device))
        logits = np.repeat(logits[:, -1].float().cpu().numpy(), B, axis=0)
        return logits, h.repeat(1, B, 1)  # every variation starts from the primed state

    def _sample(self, logits: np.ndarray, h: torch.Tensor, rows: list[RowState], cfg: SampleConfig,
                start_bars: int, keep_state: bool = False, bias: np.ndarray | None = None,
                texture: TextureHold | None = None):
        """(new ids per row, and with keep_state the state (L, B, H) after each row's last token and
        the log-probability it gave the bar line that closed the row; else None, None)."""
        g, B = self.grammar, len(rows)
        rng = np.random.default_rng(cfg.seed)
        on_cpu = self.device == "cpu"  # then no copies: the logits' memory is read in place
        feed = torch.zeros(B, dtype=torch.long)
        feed_np = feed.numpy()  # shares memory with `feed`: no tensor built per step
        out: list[list[int]] = [[] for _ in range(B)]
        done = [False] * B
        allowed = [g.bar_only_ids] * B  # the continuation opens a fresh bar
        banned = [r.banned for r in rows]
        h_end = h.clone() if keep_state else None
        lp_bar = np.zeros(B) if keep_state else None
        hold = texture is not None and texture.active
        played = [0] * B
        for step in range(cfg.bars * (MAX_TOKENS_PER_BAR + 1)):
            if step % 256 == 0:  # two uniforms per row and step, drawn in blocks, as floats
                uniforms = rng.random((256, 2 * B)).tolist()
            drawn = logits if bias is None else logits + bias  # a new array: keep the step's output
            if hold:
                drawn = drawn.copy() if bias is None else drawn
                for b in range(B):
                    d = 0.0 if done[b] else texture.offset(rows[b], start_bars, played[b])
                    if d:
                        drawn[b, g.pitch_ids] += d
            nxt = pick(drawn, allowed, banned, cfg, uniforms[step % 256], out)
            for b in range(B):
                tok = nxt[b]
                if not done[b] and tok == g.bar_id and rows[b].bars - start_bars >= cfg.bars:
                    done[b] = True
                    if keep_state:
                        h_end[:, b] = h[:, b]
                        lp_bar[b] = _log_softmax(logits[b])[tok]
                if done[b]:
                    feed_np[b] = self.tokenizer.pad_token_id
                    continue
                rows[b].update(g, tok)
                if hold:
                    played[b] += g.pitch_class[tok] >= 0
                out[b].append(tok)
                feed_np[b] = tok
                allowed[b] = rows[b].allowed(g)
            if all(done):
                break
            step_logits, h = self.step(feed if on_cpu else feed.to(self.device), h)
            logits = step_logits.numpy() if on_cpu else step_logits.float().cpu().numpy()
        else:  # a row that never closed its last bar (MAX_TOKENS_PER_BAR): its state as it stands
            if keep_state:
                for b in range(B):
                    if not done[b]:
                        h_end[:, b] = h[:, b]
        return out, h_end, lp_bar


@dataclass
class Sampled:
    """What Generator.sample_after made: new ids per row and where they leave the GRU."""
    new: list[list[int]]
    seed_bars: int  # bars in the prime
    h_end: torch.Tensor | None  # (L, B, H) after each row's last token (keep_state only)
    lp_bar: np.ndarray | None  # log p of the bar line that closed each row (keep_state only)
    prime_seconds: float
    sample_seconds: float


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - x.max()
    return z - np.log(np.exp(z).sum())


def pick(logits: np.ndarray, allowed: list[np.ndarray], banned: list[np.ndarray], cfg: SampleConfig,
         u: list[float], history: list[list[int]]) -> list[int]:
    """Next token per row from logits (B, V) float32, the grammar's allowed ids and banned mask
    per row, the sampling knobs and two uniforms per row (u: 2B floats, one to sample, one for
    the greedy coin). The draw itself is `draw.draw`, compiled."""
    B, out = len(allowed), []
    penalty = cfg.repetition_penalty
    for b in range(B):
        idx = allowed[b]
        if len(idx) == 1:  # a bar line or a kept meter: nothing to draw
            out.append(int(idx[0]))
            continue
        recent = np.array(history[b][-cfg.repetition_window:], dtype=np.int64) if penalty != 1.0 else NO_IDS
        out.append(draw(logits, b, idx, banned[b], u[b], u[B + b], cfg.temperature, cfg.top_k,
                        cfg.top_p, cfg.greedy_mix, recent, penalty))
    return out


def check_config(cfg: SampleConfig, styles: list[str]) -> None:
    """The one check SampleConfig cannot make alone: the style must be one the checkpoint knows."""
    if not isinstance(cfg.style, str) or cfg.style not in styles:
        raise MusicgenError(f"unknown style {cfg.style!r}; choose one of: {', '.join(styles)}")


def clip_from(score: symusic.Score, tick: int) -> symusic.Score:
    """The score from `tick` on, moved to start at 0, keeping the tempo and meter in force."""
    out = score.clip(tick, score.end() + 1, clip_end=False).shift_time(-tick)
    tempo = [t for t in score.tempos if t.time <= tick]
    if tempo and (not out.tempos or out.tempos[0].time > 0):
        out.tempos.insert(0, symusic.Tempo(0, tempo[-1].qpm))
    sig = [s for s in score.time_signatures if s.time <= tick]
    if sig and (not out.time_signatures or out.time_signatures[0].time > 0):
        out.time_signatures.insert(0, symusic.TimeSignature(0, sig[-1].numerator, sig[-1].denominator))
    return out


def continuation_of(score: symusic.Score, split_tick: int) -> symusic.Score:
    """Only the generated bars of a full output."""
    return clip_from(score, split_tick) if split_tick else score


def output_paths(out: Path, n: int) -> list[Path]:
    """OUT.mid, OUT-2.mid, ... for n variations."""
    return [out] + [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(2, n + 1)]


@functools.lru_cache(maxsize=4)
def load_generator(checkpoint: str | Path = DEFAULT_CHECKPOINT, device: str | None = None) -> Generator:
    """A Generator per checkpoint, loaded once."""
    return Generator(checkpoint, device)
