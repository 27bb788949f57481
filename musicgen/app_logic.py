"""The web app's logic beyond glue: the form's limits, seed checks, length estimates, per-request
output folders on a disk budget, one job per browser session, rendering the variations, and the
per-session undo history.

app.py holds only the layout and thin handlers that call into here.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import symusic
from gradio.utils import get_upload_folder

from musicgen import tokenizer as tk
from musicgen.config import check_number
from musicgen.errors import MusicgenError
from musicgen.resources import EXAMPLES_DIR
from musicgen.sample import TEMPO_OVERRIDE_RANGE, clip_from

log = logging.getLogger("musicgen.app")

# Every file the app writes lives below, inside Gradio's own cache folder: Gradio then serves
# the files where they are instead of keeping a second copy of each (issue 18: 15.6 MB a request).
APP_ROOT = Path(get_upload_folder()) / "musicgen-app"
MAX_AGE_SEC = 6 * 3600  # request folders (and Gradio's cached uploads) older than this are deleted
# and the oldest go first whenever all of them pass this (MUSICGEN_MAX_DISK_MB; the soak test sets it low)
MAX_DISK_BYTES = int(float(os.environ.get("MUSICGEN_MAX_DISK_MB", "2000")) * 1_000_000)
MAX_UNDO = 20  # results kept per session for Undo
# From scratch the model picks its own tempo: the quartiles of seconds per bar over 120 pieces
# (20 styles x 6 seeds, 16 bars; `python scripts/scratch_bar_seconds.py`), shown as a range.
SCRATCH_SECONDS_PER_BAR = (1.10, 1.73)
MAX_VARIATIONS = 4
SEED_RANGE = 2**31  # random seeds are drawn below this, so they fit any int field
RENDER_SEED_BARS = 4  # the player, roll and score start this many seed bars before the new music
MAX_QUEUE = 8  # requests waiting beyond these are told the app is busy (Gradio's queue)
CONCURRENT_JOBS = 2  # requests composed at once: one per core

# The form, one entry per numeric setting: (label on the page, lowest, highest, whole number?,
# values allowed besides). The sliders are drawn from it and every request is checked against it,
# from the page or the API alike. What the worst request costs: docs/PERFORMANCE.md.
FORM = {
    "seed_bars": ("Seed bars to use", 0, 32, True),
    "bars": ("New bars", 1, 64, True),
    "variations": ("Variations", 1, MAX_VARIATIONS, True),
    "temperature": ("Temperature", 0, 2, False),
    "top_k": ("Top-k", 0, 100, True),
    "top_p": ("Top-p", 0.05, 1, False),
    "greedy_mix": ("Greedy mix", 0, 1, False),
    "repetition_penalty": ("Repetition penalty", 0.5, 2, False),
    "seed": ("Seed", 0, SEED_RANGE - 1, True),
    "tempo": ("Tempo override (BPM)", *TEMPO_OVERRIDE_RANGE, False, 0),
}


# The style list shows composers by name; the API and the tokens keep the corpus folder names.
STYLE_NAMES = {
    "any": "Any style", "albeniz": "Isaac Albéniz", "bach": "Johann Sebastian Bach",
    "balakir": "Mily Balakirev", "beeth": "Ludwig van Beethoven", "borodin": "Alexander Borodin",
    "brahms": "Johannes Brahms", "burgm": "Friedrich Burgmüller", "chopin": "Frédéric Chopin",
    "clementi": "Muzio Clementi", "debussy": "Claude Debussy", "granados": "Enrique Granados",
    "grieg": "Edvard Grieg", "haydn": "Joseph Haydn", "liszt": "Franz Liszt",
    "mendelssohn": "Felix Mendelssohn", "mozart": "Wolfgang Amadeus Mozart",
    "muss": "Modest Mussorgsky", "pop": "Pop (POP909)", "schubert": "Franz Schubert",
    "schumann": "Robert Schumann", "tschai": "Pyotr Ilyich Tchaikovsky",
}


def style_choices(styles: list[str]) -> list[tuple[str, str]]:
    """(what the list shows, what the API takes) for each style: a full name where we know one."""
    return [(STYLE_NAMES.get(s, s.replace("_", " ").title()), s) for s in styles]


def form_value(name: str, value):
    """A form setting checked against FORM: the number, or MusicgenError naming it and its range."""
    label, lo, hi, whole, *also = FORM[name]
    return check_number(f"{label} ({name})", value, lo, hi, whole, tuple(also))


def slider(name: str, **kwargs) -> gr.Slider:
    """A gr.Slider drawn from FORM whose value is checked against it before the handler runs:
    NaN, infinities, None and strings sent through the API get a sentence, not a traceback."""
    label, lo, hi, whole, *_ = FORM[name]
    step = kwargs.pop("step", 1 if whole else 0.05)
    return checked(gr.Slider(lo, hi, label=label, step=step, **kwargs), name)


def number(name: str, **kwargs) -> gr.Number:
    """A gr.Number labelled and checked from FORM, as `slider`."""
    return checked(gr.Number(label=FORM[name][0], **kwargs), name)


def checked(component, name: str):
    """The component, its preprocess replaced by the FORM check (which also bounds and rounds).
    Set on the instance: a subclass of a Gradio component makes Gradio write a .pyi stub beside
    this module at import time, which a read-only install cannot take."""

    def preprocess(payload):
        with user_errors("reading the form"):
            return form_value(name, payload)

    component.preprocess = preprocess
    return component


_running: set[str] = set()  # browser sessions with a job under way
_running_lock = threading.Lock()


@contextmanager
def one_job_per_session(session: str | None):
    """Refuse at once a second job from a session whose first is still running, so one client
    cannot fill the workers with its own requests (its queued ones are turned away in turn)."""
    if session is None:  # no session to count against (a direct call)
        yield
        return
    key = session
    with _running_lock:
        if key in _running:
            raise gr.Error("Your previous request is still being composed: wait for it to finish, "
                           "then try again.")
        _running.add(key)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(key)


@dataclass
class Variation:
    """The files made for one variation; audio/roll/sheet are None when it has no notes."""

    midi: Path  # the whole piece: seed and continuation
    shown: symusic.Score | None = None  # what the player, roll and score show: the new bars and a few before
    shown_split: int = 0  # where the new bars start in `shown` (ticks)
    wav: Path | None = None  # written only when asked for (make_wav): 85% of a request's bytes otherwise
    mp3: Path | None = None
    musicxml: Path | None = None
    roll: Path | None = None
    svg: Path | None = None
    sounds_like: str = ""  # "Sounds like: chopin 57%, liszt 35%"; empty without a classifier

    def downloads(self) -> list[str]:
        """MIDI, MusicXML (and WAV once made) paths that exist, for a download list."""
        return [str(p) for p in (self.midi, self.musicxml, self.wav) if p is not None]


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
    """The uploaded seed as a Score (None: compose from scratch); bad files raise MusicgenError,
    and so does a path that is neither an upload, an example, nor a result of this app."""
    if not path:
        return None
    if not isinstance(path, (str, Path)):
        raise MusicgenError("the seed must be a MIDI file uploaded to this app")
    real = Path(path).resolve()
    roots = [Path(get_upload_folder()).resolve(), EXAMPLES_DIR.resolve(), APP_ROOT.resolve()]
    if not any(real.is_relative_to(root) for root in roots):
        raise MusicgenError(f"the seed {Path(path).name} is not a file uploaded to this app (it is outside "
                            "the upload folder); upload it first")
    return tk.read_midi(real)


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


def new_request_dir(max_bytes: int = MAX_DISK_BYTES, max_age: float = MAX_AGE_SEC) -> Path:
    """A fresh folder for one request's files, after clearing out expired ones: older than
    max_age, and then the oldest until all of them together hold at most max_bytes."""
    APP_ROOT.mkdir(parents=True, exist_ok=True)
    folders = []
    for old in APP_ROOT.glob("req-*"):
        try:
            folders.append((old.stat().st_mtime, sum(f.stat().st_size for f in old.iterdir()), old))
        except FileNotFoundError:  # another request cleared it first
            pass
    folders.sort()
    total, cutoff = sum(size for _, size, _ in folders), time.time() - max_age
    for mtime, size, old in folders:
        if mtime >= cutoff and total <= max_bytes:
            break
        shutil.rmtree(old, ignore_errors=True)
        total -= size
    return Path(tempfile.mkdtemp(prefix="req-", dir=APP_ROOT))


def output_stem(seed_midi: str | None, style: str) -> str:
    """A short, safe file-name stem: the seed's name (minus our -vN suffix) or scratch-STYLE."""
    stem = Path(seed_midi).stem if seed_midi else f"scratch-{style}"
    stem = re.sub(r"(-v\d+)+$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40]
    return stem or "musicgen"


def shown_part(score: symusic.Score, split_tick: int) -> tuple[symusic.Score, int]:
    """(the new bars with the RENDER_SEED_BARS seed bars before them, where the new bars start):
    what a listener wants to hear first, and a bound on what a long seed costs to render."""
    starts = tk.bar_starts(score, max(split_tick, 1))
    before = starts[starts < split_tick]
    cut = int(before[-RENDER_SEED_BARS]) if len(before) > RENDER_SEED_BARS else 0
    return (clip_from(score, cut) if cut else score), split_tick - cut


def render_variations(scores: list[symusic.Score], split_tick: int, folder: Path, stem: str,
                      title: str, soundfont: str | Path | None, progress=None) -> list[Variation]:
    """Write the MIDI of every variation, and MP3, sheet and roll of its shown part, in parallel."""
    from musicgen.render import render_all

    def one(i: int, score: symusic.Score) -> Variation:
        name = f"{stem}-v{i + 1}"
        v = Variation(midi=folder / f"{name}.mid")
        v.midi.write_bytes(tk.to_midi_bytes(score))
        if score.note_num() == 0:
            return v
        v.shown, v.shown_split = shown_part(score, split_tick)
        v.mp3, v.musicxml = folder / f"{name}.mp3", folder / f"{name}.musicxml"
        v.roll, v.svg = folder / f"{name}-roll.png", folder / f"{name}.svg"
        render_all(v.shown, mp3=v.mp3, svg=v.svg, roll=v.roll, musicxml=v.musicxml,
                   soundfont=soundfont, split_tick=v.shown_split or None,
                   title=f"{title} (variation {i + 1})" if len(scores) > 1 else title)
        v.sounds_like = style_line(v.shown, name)
        return v

    out: list[Variation | None] = [None] * len(scores)
    with ThreadPoolExecutor(max_workers=len(scores)) as pool:
        futures = {pool.submit(one, i, s): i for i, s in enumerate(scores)}
        for done, future in enumerate(as_completed(futures), 1):
            out[futures[future]] = future.result()
            if progress is not None:
                progress(0.3 + 0.7 * done / len(scores), desc=f"Rendered {done} of {len(scores)}")
    return out


def make_wav(v: Variation, soundfont: str | Path | None) -> Path:
    """The WAV of what the player plays, written the first time it is asked for."""
    from musicgen.render import render_audio, write_wav

    if v.shown is None:
        raise MusicgenError("this variation has no notes to render")
    if v.wav is None or not v.wav.exists():
        wav = v.midi.with_suffix(".wav")
        write_wav(render_audio(v.shown, soundfont), wav)
        v.wav = wav
    return v.wav


def style_line(score: symusic.Score, name: str) -> str:
    """'Sounds like: chopin 57%, liszt 35%' for a score (rendered as the critic was trained);
    empty without a classifier or a verdict."""
    from musicgen.critic import classify_score, load_classifier, sounds_like

    start = time.perf_counter()
    try:
        result = classify_score(score, load_classifier())
    except MusicgenError as e:  # no classifier folder, or too short/silent to judge: omit the line
        log.info("no style line for %s: %s", name, e)
        return ""
    log.info("classified %s in %.2f s", name, time.perf_counter() - start)
    line = sounds_like(result)
    return line[:1].upper() + line[1:]


def sheet_html(svg: Path | None) -> str:
    """The engraved score for a gr.HTML: white paper, scrollable inside the component."""
    if svg is None or not svg.exists():
        return "<p class='sheet-empty'>No notes to engrave.</p>"
    return f"<div class='sheet'>{svg.read_text(encoding='utf-8')}</div>"
