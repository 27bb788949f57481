"""The web app's logic beyond glue: seed checks, length estimates, per-request output folders,
rendering the variations, and the per-session undo history.

app.py holds only the layout and thin handlers that call into here.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import symusic

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError
from musicgen.sample import TEMPO_OVERRIDE_RANGE

log = logging.getLogger("musicgen.app")

APP_ROOT = Path(tempfile.gettempdir()) / "musicgen-app"  # every file the app writes lives below
MAX_AGE_SEC = 6 * 3600  # request folders (and Gradio's cached uploads) older than this are deleted
MAX_UNDO = 20  # results kept per session for Undo
# From scratch the model picks its own tempo: the quartiles of seconds per bar over 120 pieces
# (20 styles x 6 seeds, 16 bars; `python scripts/scratch_bar_seconds.py`), shown as a range.
SCRATCH_SECONDS_PER_BAR = (1.10, 1.73)
MAX_VARIATIONS = 4
SEED_RANGE = 2**31  # random seeds are drawn below this, so they fit any int field


@dataclass
class Variation:
    """The files made for one variation; audio/roll/sheet are None when it has no notes."""

    midi: Path
    wav: Path | None = None
    mp3: Path | None = None
    musicxml: Path | None = None
    roll: Path | None = None
    svg: Path | None = None
    sounds_like: str = ""  # "Sounds like: chopin 57%, liszt 35%"; empty without a classifier

    def downloads(self) -> list[str]:
        """MIDI, WAV and MusicXML paths that exist, for a download list."""
        return [str(p) for p in (self.midi, self.wav, self.musicxml) if p is not None]


@dataclass
class Result:
    """One press of Generate or Continue: what it started from and what it made."""

    seed_midi: str | None  # the seed file it continued (None: from scratch)
    variations: list[Variation]
    status: str
    random_seed: int


@dataclass
class History:
    """Per-session results: the one shown and the ones Undo goes back to."""

    current: Result | None = None
    past: list[Result] = field(default_factory=list)

    def push(self, result: Result) -> None:
        """Show a new result; the shown one becomes undoable."""
        if self.current is not None:
            self.past = (self.past + [self.current])[-MAX_UNDO:]
        self.current = result

    def chosen(self, choice: str | int | None) -> Variation:
        """The shown result's variation numbered choice (1-based; out of range: the nearest)."""
        if self.current is None:
            raise MusicgenError("generate something first")
        n = len(self.current.variations)
        return self.current.variations[min(max(int(choice or 1), 1), n) - 1]

    def undo(self) -> Result:
        """Go back to the previous result."""
        if not self.past:
            raise MusicgenError("nothing to undo")
        previous = self.past[-1]
        files = [v.midi for v in previous.variations] + [Path(previous.seed_midi)] * bool(previous.seed_midi)
        if not all(f.exists() for f in files):
            raise MusicgenError("the previous result has expired; generate again")
        self.past = self.past[:-1]
        self.current = previous
        return previous


@contextmanager
def user_errors(action: str = "composing"):
    """Turn any failure into gr.Error: the library's own message, or a generic one (logged)."""
    import gradio as gr

    try:
        yield
    except gr.Error:
        raise
    except MusicgenError as e:
        raise gr.Error(str(e)[:1].upper() + str(e)[1:]) from None
    except Exception:
        log.exception("unexpected failure while %s", action)
        raise gr.Error(f"Something went wrong while {action}. Please try again, or try another seed "
                       "or settings.") from None


def read_seed(path: str | Path | None) -> symusic.Score | None:
    """The uploaded seed as a Score (None: compose from scratch); bad files raise MusicgenError."""
    return tk.read_midi(path) if path else None


@functools.lru_cache(maxsize=64)
def seed_facts(path: str) -> tuple[str, float, float]:
    """(one-line summary, quarter notes per bar, tempo in qpm) at the end of a seed file.

    Cached: the estimate updates on every slider move, and upload paths never change content.
    """
    score = tk.read_midi(path)
    if tk.prepare(score).note_num() == 0:
        raise MusicgenError("the seed has no playable piano notes (drum tracks are ignored); "
                            "clear it to compose from scratch")
    sig = max(score.time_signatures, key=lambda s: s.time, default=None)
    quarters = sig.numerator * 4 / sig.denominator if sig and sig.denominator else 4.0
    last = max(score.tempos, key=lambda t: t.time, default=None)
    qpm = float(np.clip(last.qpm if last else 120.0, *tk.TEMPO_RANGE))  # as the tokenizer clamps it
    return tk.midi_summary(score), quarters, qpm


def describe_seed(path: str | Path | None, bars: float, tempo: float | None = 0.0) -> str:
    """Markdown: what the seed is and about how long the continuation will be."""
    lo, hi = TEMPO_OVERRIDE_RANGE
    tempo = tempo if tempo and lo <= tempo <= hi else 0.0  # the library rejects others anyway
    if not path:
        low, high = (4 * 60.0 / tempo,) * 2 if tempo else SCRATCH_SECONDS_PER_BAR
        length = length_text(bars, bars * low, bars * high)
        return f"No seed: composing from scratch in the chosen style. {length}."
    try:
        summary, quarters, qpm = seed_facts(str(path))
    except MusicgenError as e:
        return f"**This seed can't be used:** {e}."
    except Exception:
        log.exception("could not read seed %s", path)
        return "**This seed can't be used:** it could not be read as MIDI."
    secs = bars * quarters * 60.0 / (tempo or qpm)
    return f"Seed **{Path(path).name}**: {summary}. {length_text(bars, secs, secs)}."


def length_text(bars: float, low: float, high: float) -> str:
    """'≈ 16 s of new music (8 bars)', or '≈ 18–28 s ...' where the tempo is the model's choice."""
    bars = int(bars)
    secs = f"{low:.0f} s" if round(low) == round(high) else f"{low:.0f}–{high:.0f} s"
    return f"≈ **{secs}** of new music ({bars} bar{'s' if bars != 1 else ''})"


def pick_seed(random_seed: bool, seed: float | int | None) -> int:
    """The random seed to use: a fresh one when asked, else the given one."""
    if random_seed or seed is None:
        return secrets.randbelow(SEED_RANGE)
    if not 0 <= int(seed) < SEED_RANGE:
        raise MusicgenError(f"the seed must be a whole number from 0 to {SEED_RANGE - 1}")
    return int(seed)


def new_request_dir() -> Path:
    """A fresh folder for one request's files, after clearing out expired ones."""
    APP_ROOT.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - MAX_AGE_SEC
    for old in APP_ROOT.glob("req-*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request cleared it first
            pass
    return Path(tempfile.mkdtemp(prefix="req-", dir=APP_ROOT))


def output_stem(seed_midi: str | None, style: str) -> str:
    """A short, safe file-name stem: the seed's name (minus our -vN suffix) or scratch-STYLE."""
    stem = Path(seed_midi).stem if seed_midi else f"scratch-{style}"
    stem = re.sub(r"(-v\d+)+$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40]
    return stem or "musicgen"


def render_variations(scores: list[symusic.Score], split_tick: int, folder: Path, stem: str,
                      title: str, soundfont: str | Path | None, progress=None) -> list[Variation]:
    """Write MIDI, audio, sheet and roll for every variation, rendering them in parallel."""
    from musicgen.render import render_all

    def one(i: int, score: symusic.Score) -> Variation:
        name = f"{stem}-v{i + 1}"
        v = Variation(midi=folder / f"{name}.mid")
        v.midi.write_bytes(tk.to_midi_bytes(score))
        if score.note_num() == 0:
            return v
        v.wav, v.mp3, v.musicxml = folder / f"{name}.wav", folder / f"{name}.mp3", folder / f"{name}.musicxml"
        v.roll, v.svg = folder / f"{name}-roll.png", folder / f"{name}.svg"
        render_all(score, wav=v.wav, mp3=v.mp3, svg=v.svg, roll=v.roll, musicxml=v.musicxml,
                   soundfont=soundfont, split_tick=split_tick or None,
                   title=f"{title} (variation {i + 1})" if len(scores) > 1 else title)
        v.sounds_like = style_line(v.wav)
        return v

    out: list[Variation | None] = [None] * len(scores)
    with ThreadPoolExecutor(max_workers=len(scores)) as pool:
        futures = {pool.submit(one, i, s): i for i, s in enumerate(scores)}
        for done, future in enumerate(as_completed(futures), 1):
            out[futures[future]] = future.result()
            if progress is not None:
                progress(0.3 + 0.7 * done / len(scores), desc=f"Rendered {done} of {len(scores)}")
    return out


def style_line(wav: Path) -> str:
    """'Sounds like: chopin 57%, liszt 35%' for a rendered WAV; empty without a classifier or verdict."""
    from musicgen.critic import classify_file, load_classifier, sounds_like

    start = time.perf_counter()
    try:
        result = classify_file(wav, load_classifier())
    except MusicgenError as e:  # no classifier folder, or too short/silent to judge: omit the line
        log.info("no style line for %s: %s", wav.name, e)
        return ""
    log.info("classified %s in %.2f s", wav.name, time.perf_counter() - start)
    line = sounds_like(result)
    return line[:1].upper() + line[1:]


def sheet_html(svg: Path | None) -> str:
    """The engraved score for a gr.HTML: white paper, scrollable inside the component."""
    if svg is None or not svg.exists():
        return "<p class='sheet-empty'>No notes to engrave.</p>"
    return f"<div class='sheet'>{svg.read_text(encoding='utf-8')}</div>"
