"""The web app's logic beyond glue: the form's limits, seed checks, length estimates, per-request
output folders on a disk budget and one job per browser session.

app.py holds only the layout and thin handlers. The rest of the app: app_jobs.py (a request checked,
composed and written), app_render.py (drawing it, streamed), app_session.py (the results a session
keeps and the piece built from them), app_page.py (what each component shows).
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
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import numpy as np
import symusic
from gradio.utils import get_upload_folder

from musicgen import tokenizer as tk
from musicgen.config import check_number
from musicgen.errors import MusicgenError
from musicgen.resources import EXAMPLES_DIR
from musicgen.sample import TEMPO_OVERRIDE_RANGE

log = logging.getLogger("musicgen.app")

# Every file the app writes lives below, inside Gradio's own cache folder: Gradio then serves
# the files where they are instead of keeping a second copy of each (issue 18: 15.6 MB a request).
APP_ROOT = Path(get_upload_folder()) / "musicgen-app"
MAX_AGE_SEC = 6 * 3600  # request folders (and Gradio's cached uploads) older than this are deleted
# and the oldest go first whenever all of them pass this (MUSICGEN_MAX_DISK_MB; the soak test sets it low)
MAX_DISK_BYTES = int(float(os.environ.get("MUSICGEN_MAX_DISK_MB", "2000")) * 1_000_000)
MAX_UNDO = 20  # results kept per session for Undo
# From scratch the model picks its own tempo: the quartiles of seconds per bar over 160 pieces
# (80 styles x 2 seeds, 16 bars; `python scripts/scratch_bar_seconds.py --seeds 2`), shown as a range.
SCRATCH_SECONDS_PER_BAR = (1.46, 3.03)
MAX_VARIATIONS = 4
SEED_RANGE = 2**31  # random seeds are drawn below this, so they fit any int field
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

# From scratch the user may name a key and a meter ("" leaves them to the model and the style)
KEY_CHOICES = [("the model's choice", "")] + [
    (f"{name} {mode}", f"{name} {mode}") for mode in ("major", "minor")
    for name in ("C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F")]
COMMON_METERS = ("2/4", "3/4", "4/4", "5/4", "6/4", "7/4", "2/2", "3/2", "2/8", "3/8", "6/8", "9/8", "12/8",
                 "6/16")


def key_and_meter(known_meters: dict) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The key and meter lists, for composing from scratch (a seed brings its own): the model's
    choice first, then the 24 keys and the common meters the model's tokenizer knows."""
    meters = [("the model's choice", "")] + [(m, m) for m in COMMON_METERS if m in known_meters]
    return (gr.Dropdown(KEY_CHOICES, value="", label="Key, from scratch", elem_id="key"),
            gr.Dropdown(meters, value="", label="Meter, from scratch", elem_id="meter"))


# The style list shows composers by name; the API and the tokens keep the corpus folder names.
STYLE_NAMES = {
    "any": "Any style", "adam": "Adolphe Adam", "albeniz": "Isaac Albéniz", "alkan": "Charles-Valentin Alkan",
    "andre": "Johann André", "anonymous": "Anonymous", "ascher": "Joseph Ascher",
    "bach": "Johann Sebastian Bach", "balakir": "Mily Balakirev", "bartok": "Béla Bartók",
    "beeth": "Ludwig van Beethoven", "behr": "Franz Behr", "benda": "Jiří Antonín Benda",
    "bizet": "Georges Bizet", "blumenthal": "Jacob Blumenthal", "borodin": "Alexander Borodin",
    "brahms": "Johannes Brahms", "brown": "C. J. Brown", "burgm": "Friedrich Burgmüller",
    "chopin": "Frédéric Chopin", "christmas": "Christmas carols", "clementi": "Muzio Clementi",
    "comeau": "Olivier Comeau", "cpebach": "Carl Philipp Emanuel Bach", "czerny": "Carl Czerny",
    "debussy": "Claude Debussy", "doonan": "S. C. Doonan", "dussek": "Jan Ladislav Dussek",
    "field": "John Field", "fischer": "Johann Caspar Ferdinand Fischer",
    "froberger": "Johann Jakob Froberger",
    "gobbaerts": "Louis Gobbaerts", "godowsky": "Leopold Godowsky", "gottschalk": "Louis Moreau Gottschalk",
    "granados": "Enrique Granados", "grieg": "Edvard Grieg", "handel": "George Frideric Handel",
    "haydn": "Joseph Haydn", "hunter": "C. Hunter", "iliev": "G. K. Iliev", "joplin": "Scott Joplin",
    "kruetzer": "Kruetzer", "kuhlau": "Friedrich Kuhlau", "kuhnau": "Johann Kuhnau", "kumar": "R. Kumar",
    "liszt": "Franz Liszt", "magnenat": "S. Magnenat", "mendelssohn": "Felix Mendelssohn",
    "minkus": "Ludwig Minkus", "moszkowski": "Moritz Moszkowski", "mozart": "Wolfgang Amadeus Mozart",
    "mueller": "August Eberhard Müller", "muss": "Modest Mussorgsky", "pachelbel": "Johann Pachelbel",
    "pease": "A. H. Pease", "pejacsevich": "Dora Pejačević", "pleyel": "Ignaz Pleyel",
    "pop": "Pop (POP909)", "rachmaninoff": "Sergei Rachmaninoff", "rameau": "Jean-Philippe Rameau",
    "ravel": "Maurice Ravel", "rimskykorsakov": "Nikolai Rimsky-Korsakov", "satie": "Erik Satie",
    "scarlatti": "Domenico Scarlatti", "schubert": "Franz Schubert", "schumann": "Robert Schumann",
    "scriabin": "Alexander Scriabin", "sidwell": "A. Sidwell", "sinding": "Christian Sinding",
    "smallwood": "William Smallwood", "sousa": "John Philip Sousa", "spagnoletti": "Spagnoletti",
    "stanchinsky": "Alexei Stanchinsky", "strauss": "Johann Strauss II", "traditional": "Traditional",
    "tschai": "Pyotr Ilyich Tchaikovsky", "turpin": "Tom Turpin", "verdi": "Giuseppe Verdi",
    "wanhal": "Johann Baptist Wanhal", "yaniewicz": "Feliks Janiewicz",
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


class Job:
    """One running job of a session: Stop sets `stopped` (the job ends at its next update, showing
    what is finished); the job sets `done` when it has ended."""

    def __init__(self):
        self.stopped, self.done = threading.Event(), threading.Event()


_running: dict[str, Job] = {}  # browser session -> its job under way
_running_lock = threading.Lock()


@contextmanager
def one_job_per_session(session: str | None):
    """Refuse at once a second job from a session whose first is still running, so one client
    cannot fill the workers with its own requests (its queued ones are turned away in turn).
    Yields the Job, which the work checks for Stop."""
    job = Job()
    if session is not None:
        with _running_lock:
            if session in _running:
                raise gr.Error("Your previous request is still being composed: wait for it to finish, "
                               "then try again.")
            _running[session] = job
    try:
        yield job
    finally:
        job.done.set()
        if session is not None:
            with _running_lock:
                if _running.get(session) is job:  # not a job started after a Stop released this one
                    del _running[session]


def session_running(session: str | None) -> bool:
    """Whether the session has a job under way."""
    with _running_lock:
        return session in _running


def stop_session(session: str | None, wait_sec: float = 3.0) -> None:
    """Stop the session's job: it ends at its next update (the piece of work under way finishes
    in the background, nothing new starts) and the session may start another at once. Waits up to
    wait_sec for it to end, so what the page shows last is the stopped job's final state."""
    with _running_lock:
        job = _running.pop(session, None)
    if job is not None:
        job.stopped.set()
        job.done.wait(wait_sec)


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
    check_midi_name(path)
    real = Path(path).resolve()
    roots = [Path(get_upload_folder()).resolve(), EXAMPLES_DIR.resolve(), APP_ROOT.resolve()]
    if not any(real.is_relative_to(root) for root in roots):
        raise MusicgenError(f"the seed {Path(path).name} is not a file uploaded to this app (it is outside "
                            "the upload folder); upload it first")
    return tk.read_midi(real)


def check_midi_name(path: str | Path) -> None:
    """Refuse a file whose name does not say MIDI (a photo or a recording dropped by mistake)."""
    name = Path(path).name
    if Path(name).suffix.lower() not in tk.MIDI_SUFFIXES:
        raise MusicgenError(f"{name} is not a MIDI file: the seed must be a .mid or .midi file (to hear "
                            "which composer a recording sounds like, use the Analyze tab)")


@functools.lru_cache(maxsize=64)
def seed_facts(path: str) -> tuple[str, float, float]:
    """(one-line summary, quarter notes per bar, tempo in qpm) at the end of a seed file.

    Cached: the estimate updates on every slider move, and upload paths never change content.
    """
    check_midi_name(path)
    score = tk.read_midi(path)
    if tk.prepare(score).note_num() == 0:
        raise MusicgenError("the seed has no playable piano notes (drum tracks are ignored); "
                            "clear it to compose from scratch")
    sig = max(score.time_signatures, key=lambda s: s.time, default=None)
    quarters = sig.numerator * 4 / sig.denominator if sig and sig.denominator else 4.0
    last = max(score.tempos, key=lambda t: t.time, default=None)
    qpm = float(np.clip(last.qpm if last else 120.0, *tk.TEMPO_RANGE))  # as the tokenizer clamps it
    return tk.midi_summary(score), quarters, qpm


def describe_seed(path: str | Path | None, bars: float, tempo: float | None = 0.0,
                  meter: str | None = "") -> str:
    """Markdown: what the seed is and about how long the continuation will be (from scratch in
    `meter` where one is chosen, else 4/4)."""
    lo, hi = TEMPO_OVERRIDE_RANGE
    tempo = tempo if tempo and lo <= tempo <= hi else 0.0  # the library rejects others anyway
    if not path:
        num, _, den = (meter or "4/4").partition("/")
        quarters = 4.0 * int(num) / int(den) if num.isdigit() and den.isdigit() and int(den) else 4.0
        low, high = ((quarters * 60.0 / tempo,) * 2 if tempo
                     else tuple(quarters / 4 * s for s in SCRATCH_SECONDS_PER_BAR))
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
    """A short, safe file-name stem: the seed's name (minus our -takeN-vN and -pieceN suffixes) or
    scratch-STYLE."""
    stem = Path(seed_midi).stem if seed_midi else f"scratch-{style}"
    stem = re.sub(r"(-take\d+|-v\d+|-piece\d+)+$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40]
    return stem or "musicgen"
