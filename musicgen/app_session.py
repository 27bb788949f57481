"""What one browser session keeps: its results (the one shown, and the ones Undo goes back to)
and the piece the user builds from them, take by take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import symusic

from musicgen import tokenizer as tk
from musicgen.app_logic import new_request_dir, output_stem, read_seed
from musicgen.app_render import STAGE_NAMES, STAGES, Variation, View
from musicgen.errors import MusicgenError
from musicgen.sample import clip_from

MAX_UNDO = 20  # results kept per session for Undo
MAX_PIECE_BARS = 256  # a piece longer than this is not kept (it would take long to engrave)
MAX_PIECE_NOTES = 12_000  # nor one with more notes: a 4 MB seed may hold 600,000 in a few bars


@dataclass
class Result:
    """One press of Compose or Continue: what it started from and what it made."""

    seed_midi: str | None  # the seed file it continued (None: from scratch)
    variations: list[Variation]
    summary: str  # what was made, how fast, and what the user should know
    random_seed: int
    take: int  # the session's count of results: names every file of this one
    bars: int  # new bars asked for
    whole: bool = False  # the page shows the whole pieces (else the new bars and a few before)
    stopped: bool = False  # the user pressed Stop before everything was drawn

    def views(self) -> list[View]:
        """The views the page shows, one per variation with notes."""
        return [view for v in self.variations if (view := v.view(self.whole)) is not None]

    def finished(self) -> bool:
        """Every view drawn and every variation judged."""
        return (all(set(STAGES) <= v.done for v in self.views())
                and all(v.judged for v in self.variations if v.score is not None))

    def status(self) -> str:
        """The status line: done, stopped, or how far the rendering has come."""
        views, made = self.views(), [v for v in self.variations if v.score is not None]
        counts = [f"{STAGE_NAMES[s]} {sum(s in v.done for v in views)}/{len(views)}" for s in STAGES]
        counts.append(f"{STAGE_NAMES['style']} {sum(v.judged for v in made)}/{len(made)}")
        empty = [str(i + 1) for i, v in enumerate(self.variations) if v.score is None]
        failed = sorted({f"{STAGE_NAMES[s]} of variation {i + 1}: {err}"
                         for i, v in enumerate(self.variations) if (view := v.view(self.whole))
                         for s, err in view.errors.items()})
        finished = self.finished()
        head = ("**Done.**" if finished else "**Stopped.** You keep what was finished:" if self.stopped
                else "**Composed; drawing it now:**")
        line = f"{head} {self.summary}" if finished else f"{head} {', '.join(counts)}. {self.summary}"
        if empty:
            line += f"; variation {', '.join(empty)} came out without notes: try another seed"
        if failed:
            line += "; not drawn: " + "; ".join(failed)
        return line


@dataclass
class History:
    """Per-session results: the one shown and the ones Undo goes back to."""

    current: Result | None = None
    past: list[Result] = field(default_factory=list)
    takes: int = 0  # results made so far in this session (Undo does not lower it)

    def next_take(self) -> int:
        """The number of the result about to be made (every file name in a session is unique)."""
        self.takes += 1
        return self.takes

    def push(self, result: Result) -> None:
        """Show a new result; the shown one becomes undoable."""
        if self.current is not None:
            self.past = (self.past + [self.current])[-MAX_UNDO:]
        self.current = result

    def chosen(self, choice: str | int | None) -> Variation:
        """The shown result's variation numbered choice (1-based; out of range: the nearest)."""
        if self.current is None:
            raise MusicgenError("compose something first")
        n = len(self.current.variations)
        return self.current.variations[min(max(int(choice or 1), 1), n) - 1]

    def undo(self) -> Result:
        """Go back to the previous result."""
        if not self.past:
            raise MusicgenError("nothing to undo")
        previous = self.past[-1]
        files = [v.midi for v in previous.variations] + [Path(p) for p in [previous.seed_midi] if p]
        if not all(f.exists() for f in files):
            raise MusicgenError("the previous result has expired; compose again")
        self.past = self.past[:-1]
        self.current = previous
        return previous


@dataclass
class Segment:
    """One part of a piece: the seed, or a kept take's new bars; starts at tick 0, whole bars."""

    label: str
    score: symusic.Score
    length: int  # ticks: whole bars, so the next part starts on a bar line
    bars: int


@dataclass
class Piece:
    """The user's piece: the seed, then each kept take's new bars, one after the other."""

    segments: list[Segment] = field(default_factory=list)
    version: int = 0  # every change writes new files, named by it
    midi: Path | None = None
    view: View | None = None

    def keep(self, result: Result, v: Variation, number: int) -> None:
        """Append variation `number` of `result` (its new bars); an empty piece starts with its seed."""
        if v.score is None:
            raise MusicgenError(f"variation {number} has no notes to keep")
        if v.fill_end is not None:  # rewritten bars: the rewritten piece becomes the piece
            whole = tk.prepare(v.score)
            whole.key_signatures = list(v.score.key_signatures)
            label = f"take {result.take}, variation {number} (bars rewritten)"
            part = Segment(label, whole, *bar_length(whole))
            check_size([part])
            self.segments = [part]
            self._write(output_stem(result.seed_midi, "piece"))
            return
        tpq = self.segments[0].score.tpq if self.segments else v.score.tpq  # the piece's resolution
        take = clip_from(v.score, v.split)
        take = take if take.tpq == tpq else take.resample(tpq)
        take.key_signatures = [symusic.KeySignature(0, k.key, k.tonality) for k in v.score.key_signatures[:1]]
        parts = []
        if not self.segments and result.seed_midi:
            seed = seed_segment(result.seed_midi, tpq)
            if seed is not None:
                parts.append(seed)
        parts.append(Segment(f"take {result.take}, variation {number}", take,
                             *bar_length(take, result.bars)))
        check_size(self.segments + parts)
        self.segments += parts
        self._write(output_stem(result.seed_midi, "piece") if self.version == 0 else self.stem)

    def remove(self, index: int) -> None:
        """Take part `index` (0-based) out of the piece."""
        if not 0 <= index < len(self.segments):
            raise MusicgenError("choose a part of the piece to remove")
        del self.segments[index]
        self._write(self.stem)

    @property
    def stem(self) -> str:
        return output_stem(str(self.midi) if self.midi else None, "piece")

    def summary(self) -> str:
        """'3 parts, 24 bars'."""
        n, bars = len(self.segments), sum(s.bars for s in self.segments)
        return f"{n} part{'s' if n != 1 else ''}, {bars} bar{'s' if bars != 1 else ''}"

    def labels(self) -> list[tuple[str, int]]:
        """(what a list shows, the part's index) for each part."""
        return [(f"{i + 1}. {s.label} ({s.bars} bar{'s' if s.bars != 1 else ''})", i)
                for i, s in enumerate(self.segments)]

    def score(self) -> symusic.Score:
        """The parts one after another, as one piano track."""
        tpq = self.segments[0].score.tpq
        out = symusic.Score(tpq)
        track = symusic.Track(name="Piano", program=0)
        offset = 0
        for seg in self.segments:
            part = seg.score.shift_time(offset)
            for t in part.tracks:
                track.notes.extend(t.notes)
            out.tempos.extend(part.tempos)
            out.time_signatures.extend(part.time_signatures)
            offset += seg.length
        keyed = next((s.score for s in self.segments if len(s.score.key_signatures)), None)
        out.key_signatures.extend(keyed.key_signatures[:1] if keyed is not None else [])
        track.notes.sort()
        out.tracks.append(track)
        return out

    def _write(self, stem: str) -> None:
        """Write the piece's MIDI and a fresh (not yet rendered) view of it."""
        self.version += 1
        if not self.segments:
            self.midi = self.view = None
            return
        folder, name = new_request_dir(), f"{stem}-piece{self.version}"
        score = self.score()
        self.midi = folder / f"{name}.mid"
        self.midi.write_bytes(tk.to_midi_bytes(score))
        last = sum(s.length for s in self.segments[:-1])
        self.view = View(score, last or None, folder / name, f"{stem}: your piece")


def check_size(parts: list[Segment]) -> None:
    """Refuse a piece longer than MAX_PIECE_BARS or with more than MAX_PIECE_NOTES notes."""
    if sum(s.bars for s in parts) > MAX_PIECE_BARS:
        raise MusicgenError(f"the piece would pass {MAX_PIECE_BARS} bars, the most it may hold; "
                            "remove a part first")
    if sum(s.score.note_num() for s in parts) > MAX_PIECE_NOTES:
        raise MusicgenError(f"the piece would pass {MAX_PIECE_NOTES:,} notes, the most it may hold; "
                            "start from a shorter seed, or remove a part first")


def bar_length(score: symusic.Score, bars: int | None = None) -> tuple[int, int]:
    """(ticks, bars) of a part that starts at tick 0: `bars` bars where given, else up to the bar
    line after its last note's onset."""
    onsets = [n.time for t in score.tracks for n in t.notes]
    last = max(onsets, default=0)
    starts = tk.bar_starts(score, max(last + 1, score.end()) + 16 * score.tpq * ((bars or 0) + 2))
    if bars is not None and bars < len(starts):
        return int(starts[bars]), bars
    after = int(next(i for i, s in enumerate(starts) if s > last))
    return int(starts[after]), after


def seed_segment(path: str, tpq: int) -> Segment | None:
    """The seed file as the piece's first part: one piano track at the takes' resolution."""
    seed = read_seed(path)
    if seed is None:
        return None
    part = tk.prepare(seed).resample(tpq)
    keys = sorted(seed.key_signatures, key=lambda k: k.time)
    part.key_signatures = [symusic.KeySignature(0, keys[-1].key, keys[-1].tonality)] if keys else []
    if part.note_num() == 0:
        return None
    return Segment(f"seed: {Path(path).name}", part, *bar_length(part))
