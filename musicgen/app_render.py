"""The web app's rendering: what a player, roll and score show of a piece (a View), each variation's
files, and the streaming renderer that draws them, most wanted first.

Order of work for one request: every variation's piano roll, then every audio, then every score,
and only when all the music is out, the style critic's verdicts (the slowest part, and the least
needed), each stage on one thread or two (render's docstring says why). The handler yields after
each finished piece, so the page fills in as it goes.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import symusic

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError
from musicgen.sample import clip_from

log = logging.getLogger("musicgen.app")

RENDER_SEED_BARS = 4  # the player, roll and score start this many seed bars before the new music
STAGES = ("roll", "audio", "sheet")  # the music, in the order a listener wants it
PHASES = (("roll", 1), ("audio", 2), ("sheet", 1), ("style", 2))  # (stage, threads), in order
SHEET_WIDTHS = (1000, 360)  # px: a desktop page, and a phone's (the page shows the one that fits)
STAGE_NAMES = {"roll": "piano roll", "audio": "audio", "sheet": "sheet music", "style": "style verdict"}


@dataclass
class View:
    """What a player, roll and score show of a piece, and the files drawn from it."""

    score: symusic.Score
    split: int | None  # tick in `score` where the new music starts (None: nothing marked)
    stem: Path  # folder and file name without suffix: every file of the view is named after it
    title: str
    end: int | None = None  # tick where the new music ends (rewritten bars); None: it runs to the end
    first_bar: int = 1  # the number of its first bar in the whole piece
    mp3: Path | None = None
    roll: Path | None = None
    musicxml: Path | None = None
    sheet: Path | None = None  # the score's HTML for the page: SVGs at two widths, cursor data
    wav: Path | None = None  # only when asked for (make_wav): WAV is most of a request's bytes
    done: set[str] = field(default_factory=set)  # stages finished (or failed)
    errors: dict[str, str] = field(default_factory=dict)  # stage -> what went wrong, for the user

    def stage(self, name: str, soundfont: str | Path | None = None) -> None:
        """Run one rendering stage; a failure is kept for the status line instead of raised."""
        start = time.perf_counter()
        try:
            if name == "roll":
                from musicgen.render import midi_to_roll_png

                midi_to_roll_png(self.score, self.stem.with_name(self.stem.name + "-roll.png"), self.split,
                                 end_tick=self.end, first_bar=self.first_bar)
                self.roll = self.stem.with_name(self.stem.name + "-roll.png")
            elif name == "audio":
                from musicgen.render import render_audio, write_mp3

                write_mp3(render_audio(self.score, soundfont), self.stem.with_suffix(".mp3"))
                self.mp3 = self.stem.with_suffix(".mp3")
            elif name == "sheet":
                self._engrave()
        except Exception as e:  # one stage failing must not lose the others
            if not isinstance(e, MusicgenError):
                log.exception("rendering the %s of %s failed", name, self.stem.name)
            self.errors[name] = str(e) if isinstance(e, MusicgenError) else f"the {STAGE_NAMES[name]} failed"
        finally:
            self.done.add(name)
            log.info("%s of %s in %.2f s", name, self.stem.name, time.perf_counter() - start)

    def _engrave(self) -> None:
        from musicgen.render.score import engrave, musicxml_text

        xml = musicxml_text(self.score, self.title, self.split or None, self.end, self.first_bar)
        musicxml = self.stem.with_suffix(".musicxml")
        musicxml.write_text(xml, encoding="utf-8")
        self.musicxml = musicxml
        svgs, onsets = engrave(xml, SHEET_WIDTHS)
        sheet = self.stem.with_name(self.stem.name + "-sheet.html")
        sheet.write_text(sheet_markup(self, svgs, onsets), encoding="utf-8")
        self.sheet = sheet

    def html(self, data_only: bool = False) -> str:
        """The sheet music for a gr.HTML, or a line saying why there is none (yet); data_only: just
        what the playhead needs (a player with a roll and no score)."""
        if data_only:
            return sheet_markup(self, [], [], waiting="")
        if self.sheet is not None and self.sheet.exists():
            return self.sheet.read_text(encoding="utf-8")
        if "sheet" in self.errors:
            return f"<p class='sheet-empty'>No sheet music: {html.escape(self.errors['sheet'])}.</p>"
        return sheet_markup(self, [], [])  # the cursor's data, before the score is engraved

    def files(self) -> list[str]:
        """The view's own downloads that exist: MusicXML, and the WAV once made."""
        return [str(p) for p in (self.musicxml, self.wav) if p is not None]


def playhead_data(view: View) -> dict:
    """What the page's cursor needs to follow the audio: the tempo map as [seconds, quarter
    notes, qpm] at each change, where the roll's time axis lies ([left, right] as fractions of
    the image's width, and the quarter notes it spans), and [bar number, quarter notes] of each
    bar (to show a chosen range of bars on the roll)."""
    from musicgen.render.roll import time_axis

    score = view.score
    tempos = sorted((t.time, t.qpm) for t in score.tempos)
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, 120.0))  # MIDI's default until the first tempo event
    seconds = tk.tick_to_seconds(score, [t for t, _ in tempos])
    tempo = [[round(float(s), 4), round(t / score.tpq, 4), round(q, 3)] for s, (t, q) in zip(seconds, tempos)]
    left, right, quarters = time_axis(score)
    bars = [[view.first_bar + i, round(int(t) / score.tpq, 4)] for i, t in enumerate(tk.bar_starts(score))]
    return {"tempo": tempo, "roll": [round(left, 5), round(right, 5), round(quarters, 4)], "bars": bars}


def sheet_markup(view: View, svgs: list[str], onsets: list[tuple[float, str]],
                 waiting: str = "<p class='sheet-wait'>Engraving the score…</p>") -> str:
    """The sheet's HTML: the SVG for wide screens and the one for phones, and data attributes for
    assets/js/playhead.js (the cursor over the roll and the notes lit in the score)."""
    data = html.escape(json.dumps(playhead_data(view), separators=(",", ":")))
    marks = html.escape(json.dumps(onsets, separators=(",", ":")))
    body = "".join(f"<div class='sheet-{kind}'>{svg}</div>" for kind, svg in zip(("wide", "narrow"), svgs))
    if not svgs:
        body = waiting
    return f"<div class='sheet' data-playhead='{data}' data-onsets='{marks}'>{body}</div>"


def shown_part(score: symusic.Score, split_tick: int, end_tick: int | None = None) -> tuple:
    """(part, where the new bars start in it, where they end in it or None, its first bar's number):
    the new bars with RENDER_SEED_BARS bars before them (and after them, for rewritten bars): what a
    listener wants to hear first, and a bound on what a long piece costs to render."""
    starts = tk.bar_starts(score, score.end() + 1)
    before = starts[starts < split_tick]
    cut = int(before[-RENDER_SEED_BARS]) if len(before) > RENDER_SEED_BARS else 0
    after = starts[starts >= end_tick] if end_tick is not None else starts[:0]
    stop = int(after[RENDER_SEED_BARS]) if len(after) > RENDER_SEED_BARS else None
    if not cut and stop is None:
        return score, split_tick, end_tick, 1
    part = clip_from(score, cut) if cut else score.copy()
    if stop is not None:
        part = part.clip(0, stop - cut, clip_end=False)
    keys = sorted((k for k in score.key_signatures if k.time <= cut), key=lambda k: k.time)
    if keys and (not part.key_signatures or part.key_signatures[0].time > 0):  # the key in force
        part.key_signatures.insert(0, symusic.KeySignature(0, keys[-1].key, keys[-1].tonality))
    first_bar = int((starts < cut).sum()) + 1
    return part, split_tick - cut, None if end_tick is None else end_tick - cut, first_bar


@dataclass
class Variation:
    """One variation of a result: its whole MIDI, and its views (the new bars and a few before;
    the whole piece, drawn when asked for)."""

    name: str  # unique within a session: seed name, take number, variation number
    midi: Path  # the whole piece: seed and continuation (or the piece with bars rewritten)
    score: symusic.Score | None  # None: it came out without notes
    split: int  # where the new music starts (ticks of `score`)
    title: str
    fill_end: int | None = None  # where rewritten bars end; None: a continuation, new to the end
    views: dict[str, View] = field(default_factory=dict)  # "new", and "whole" once asked for
    sounds_like: str = ""  # "Sounds like: chopin 57%, liszt 35%"; empty without a verdict
    judged: bool = False  # the critic has been asked (its line may still be empty)

    def view(self, whole: bool = False) -> View | None:
        """The view the page shows, made (not yet rendered) the first time it is asked for."""
        if self.score is None:
            return None
        key = "whole" if whole else "new"
        if key not in self.views:
            shown, split, end, first_bar = shown_part(self.score, self.split, self.fill_end)
            marks = (self.split or None, self.midi.with_suffix(""), self.title, self.fill_end)
            if shown is self.score:  # a short piece: the new bars' view is the whole piece
                self.views["new"] = self.views["whole"] = self.views.get("new") or View(self.score, *marks)
            elif whole:
                self.views[key] = View(self.score, marks[0], self.midi.with_name(self.name + "-whole"),
                                       *marks[2:])
            else:
                self.views[key] = View(shown, split, self.midi.with_suffix(""), self.title, end, first_bar)
        return self.views[key]

    def downloads(self, whole: bool = False) -> list[str]:
        """MIDI (the whole piece), then the shown view's MusicXML and WAV where made."""
        view = self.view(whole)
        return [str(self.midi)] + (view.files() if view else [])


def write_variations(scores: list[symusic.Score], split_tick: int, folder: Path, name: str,
                     title: str, fill_end: int | None = None) -> list[Variation]:
    """Write each variation's MIDI (at once: it is the first download offered)."""
    out = []
    for i, score in enumerate(scores):
        v_name = f"{name}-v{i + 1}"
        v = Variation(v_name, folder / f"{v_name}.mid", score if score.note_num() else None, split_tick,
                      f"{title} (variation {i + 1})" if len(scores) > 1 else title, fill_end)
        v.midi.write_bytes(tk.to_midi_bytes(score))
        out.append(v)
    return out


def render(views: list[View], soundfont: str | Path | None = None, judge: list[Variation] = (),
           stages: tuple[str, ...] = STAGES) -> Iterator[None]:
    """Draw the views and then judge the variations' style, yielding after each finished piece of
    work; closing the iterator (the user pressed Stop) starts nothing more.

    One stage at a time for every view, variation 1 first, each on as many threads as pays off
    (PHASES): two for FluidSynth and LAME and for the critic's GRU, which run outside the GIL;
    one for matplotlib and music21, which hold it (two scores at once took longer than one after
    the other). A GIL-bound stage never runs beside the audio: FluidSynth is driven event by event
    from Python, and each event waits for the GIL (0.38 s of audio took 14 s beside music21 on a
    2-core machine; scripts/render_threads.py). The critic's verdicts come last."""
    for stage, workers in PHASES:
        if stage == "style":
            work = [(_judge, v) for v in judge]
        else:
            work = [(View.stage, v, stage, soundfont) for v in views
                    if stage in stages and stage not in v.done]
        if not work:
            continue
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"render-{stage}")
        try:
            futures = [pool.submit(*job) for job in work]
            for future in as_completed(futures):
                future.result()  # stages keep their own failures; anything else is a bug to show
                yield
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _judge(v: Variation) -> None:
    """The critic's line for a variation's new bars and the few before (as the player plays)."""
    view = v.view()
    if view is not None:
        v.sounds_like = style_line(view.score, v.name)
    v.judged = True


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
    except Exception:  # the verdict is a nicety: never lose the music over it
        log.exception("the critic failed on %s", name)
        return ""
    log.info("classified %s in %.2f s", name, time.perf_counter() - start)
    line = sounds_like(result)
    return line[:1].upper() + line[1:]


def make_wav(view: View, soundfont: str | Path | None) -> Path:
    """The WAV of what the player plays, written the first time it is asked for."""
    from musicgen.render import render_audio, write_wav

    if view.wav is None or not view.wav.exists():
        wav = view.stem.with_suffix(".wav")
        write_wav(render_audio(view.score, soundfont), wav)
        view.wav = wav
    return view.wav
