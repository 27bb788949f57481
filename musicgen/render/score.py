"""MIDI -> readable piano score: quantised grand staff built with music21, engraved by verovio.

The MIDI is quantised to a 16th grid first, so the score never shows the tuplets and
odd ties that unquantised timing produces. Each staff is one voice of chords: a note
held past the next onset in its staff is cut there (the audio keeps it; the page stays
readable). Seed and continuation are told apart by a double bar / label at the split
and by coloured noteheads for the continuation.
"""

from __future__ import annotations  # symusic.Score is a factory, not a type, in hints

import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import symusic

from musicgen.errors import MusicgenError
from musicgen.tokenizer import read_midi

STEPS_PER_QUARTER = 4  # a 16th grid: fine enough for piano pieces, and never a tuplet
SPLIT_PITCH = 60  # middle C and above go to the treble staff
NOTATABLE = (16, 12, 8, 6, 4, 3, 2, 1)  # lengths in 16ths written without a tie, whole to 16th
CONTINUATION_COLOR = "#d9480f"
TEMPO_MARK_STEP = 0.04  # a tempo change of 4% or more gets a new metronome mark
SCALE = 40  # verovio zoom in percent: staff spaces of ~7 px, comfortable in a browser
# Krumhansl-Kessler key profiles (major, minor), tonic first.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


@dataclass
class Chunk:
    """One written chord or rest in one staff and bar; lengths and offsets in 16ths."""

    offset: int  # from the start of the bar
    length: int
    pitches: tuple[int, ...]  # MIDI pitches; empty for a rest
    tie: str | None  # music21 tie type: "start", "continue", "stop" or None
    continuation: bool


def quantise(score: symusic.Score) -> list[tuple[int, int, int]]:
    """All non-drum notes as (start, end, pitch) in 16th steps, each at least one step long."""
    step = score.tpq / STEPS_PER_QUARTER
    notes = set()
    for track in score.tracks:
        if track.is_drum:
            continue
        for n in track.notes:
            start = round(n.time / step)
            notes.add((start, max(round(n.end / step), start + 1), n.pitch))
    return sorted(notes)


def time_signature(score: symusic.Score) -> tuple[int, int]:
    """The piece's first time signature as (numerator, denominator); 4/4 if none or unusable."""
    for ts in score.time_signatures[:1]:
        if ts.denominator in (2, 4, 8, 16) and ts.numerator > 0:
            return ts.numerator, ts.denominator
    return 4, 4


def key_sharps(score: symusic.Score, notes: list[tuple[int, int, int]]) -> int:
    """Sharps (negative: flats) of the key: the MIDI's own signature, else Krumhansl-Kessler."""
    sigs = [k.key for k in score.key_signatures if k.key != 0]
    if sigs:  # a 0 (C major) signature is often just a writer's default, so we analyse those
        return sigs[0]
    weights = [0.0] * 12
    for start, end, pitch in notes:
        weights[pitch % 12] += end - start
    best, sharps = -2.0, 0
    for tonic in range(12):
        for profile, relative_major in ((MAJOR_PROFILE, tonic), (MINOR_PROFILE, tonic + 3)):
            rotated = [profile[(pc - tonic) % 12] for pc in range(12)]
            r = _correlation(weights, rotated)
            if r > best:
                # position on the line of fifths, kept within Db (-5) .. F# (6) major
                best, sharps = r, (relative_major * 7 + 5) % 12 - 5
    return sharps


def _correlation(a: list[float], b: list[float]) -> float:
    """Pearson correlation of two equal-length lists (0 when either is constant)."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return cov / (va * vb) ** 0.5 if va and vb else 0.0


def spell(pitch: int, sharps: int) -> tuple[str, int, int]:
    """(step, alter, octave) for a MIDI pitch: the spelling nearest the key on the line of fifths."""
    centre = sharps + 2  # middle of the key's seven diatonic fifths
    base = pitch % 12 * 7 % 12  # line-of-fifths position of one spelling (C=0, G=1, F=-1 ...)
    # candidates with at most one sharp or flat; ties go to the sharp, e.g. a leading tone
    fifths = min(
        (base + 12 * k for k in (-1, 0, 1) if -8 <= base + 12 * k <= 12), key=lambda p: (abs(p - centre), -p)
    )
    step, alter = "FCGDAEB"[(fifths + 1) % 7], (fifths + 1) // 7
    return step, alter, (pitch - alter) // 12 - 1


def staff_chunks(
    notes: list[tuple[int, int, int]], bar_len: int, n_bars: int, split: int | None, compound: bool = False,
    end: int | None = None,
) -> list[list[Chunk]]:
    """One staff's notes as written chords and rests, per bar, split at barlines and into tie-free
    lengths; notes from `split` (up to `end`, where given) are the new music."""
    onsets: dict[int, list[tuple[int, int]]] = {}
    for start, end, pitch in notes:
        onsets.setdefault(start, []).append((end, pitch))
    events = []  # (start, end, pitches), with rests in the gaps
    starts = sorted(onsets)
    pos = 0
    for i, start in enumerate(starts):
        if start > pos:
            events.append((pos, start, ()))
        nxt = starts[i + 1] if i + 1 < len(starts) else n_bars * bar_len
        end = min(max(e for e, _ in onsets[start]), nxt)  # one voice: cut held notes at the next onset
        events.append((start, end, tuple(sorted({p for _, p in onsets[start]}))))
        pos = end
    if pos < n_bars * bar_len:
        events.append((pos, n_bars * bar_len, ()))

    bars: list[list[Chunk]] = [[] for _ in range(n_bars)]
    for start, end, pitches in events:
        pieces = []  # (bar, offset, length)
        t = start
        while t < end:
            bar, offset = divmod(t, bar_len)
            length = _chunk_length(offset, min(end - t, bar_len - offset), not pitches, compound)
            pieces.append((bar, offset, length))
            t += length
        for i, (bar, offset, length) in enumerate(pieces):
            tie = None
            if pitches and len(pieces) > 1:
                tie = "start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue"
            continuation = split is not None and start >= split and (end is None or start < end)
            bars[bar].append(Chunk(offset, length, pitches, tie, continuation))
    return bars


def _chunk_length(offset: int, room: int, rest: bool, compound: bool) -> int:
    """Longest tie-free length that fits in room and starts where a reader expects it."""
    for length in NOTATABLE:
        if length > room:
            continue
        if compound:  # beats are dotted quarters: whole beats start on one, the rest stay inside one
            if length in (6, 12):
                ok = offset % 6 == 0
            else:
                inside = offset % 6 + length <= 6 and length != 8
                ok = (
                    inside
                    and offset % (3 if length == 3 else min(length, 2)) == 0
                    and not (rest and length == 3)
                )
        elif rest:  # undotted, on a multiple of its own length: rests fill up to the beat
            ok = length & (length - 1) == 0 and offset % length == 0
        else:  # on a multiple of its undotted half-size capped at a quarter (any 8th for a
            # quarter note, not between 16ths); whole and dotted half only at the bar start
            ok = offset % (16 if length >= 12 else min(4, 1 << (length.bit_length() - 1))) == 0
        if ok:
            return length
    return 1


def _chord(c: Chunk, sharps: int, key_alter: dict[str, int], accidentals: dict[tuple[str, int], int]):
    """A music21 Note or Chord for a chunk, spelled for the key, with accidentals where needed.

    accidentals holds the alterations already in force in this bar and is updated.
    """
    from music21 import chord, note, pitch, tie

    heads = []
    for p in c.pitches:
        step, alter, octave = spell(p, sharps)
        head = pitch.Pitch(step=step, octave=octave)
        in_force = accidentals.get((step, octave), key_alter.get(step, 0))
        if alter != in_force or alter:
            head.accidental = pitch.Accidental(alter)
            # written only where it changes what the key or bar already says; a tied-over
            # note carries its accidental and never reprints it
            head.accidental.displayStatus = alter != in_force and c.tie in (None, "start")
        if c.tie in (None, "start"):
            accidentals[(step, octave)] = alter
        n = note.Note(head)
        if c.continuation:
            n.style.color = CONTINUATION_COLOR
        heads.append(n)
    element = heads[0] if len(heads) == 1 else chord.Chord(heads)
    element.quarterLength = c.length / STEPS_PER_QUARTER
    if c.tie:
        element.tie = tie.Tie(c.tie)
    return element


def tempo_marks(score: symusic.Score) -> dict[int, list[tuple[int, int]]]:
    """{bar index: [(offset in 16ths, quarter notes per minute)]}: the first tempo (120 if none),
    then each bar's last change that moves the tempo by TEMPO_MARK_STEP or more from the last
    mark written (on the 16th grid of the first meter): a played rubato is not written bar by bar."""
    num, den = time_signature(score)
    bar_len, step = num * 16 // den, score.tpq / STEPS_PER_QUARTER
    marks: dict[int, list[tuple[int, int]]] = {}
    written = None
    for t in sorted(score.tempos, key=lambda t: t.time) or [symusic.Tempo(0, 120.0)]:
        qpm = round(t.qpm)
        if written is not None and abs(qpm - written) < TEMPO_MARK_STEP * written:
            continue
        at = round(t.time / step) if written is not None else 0  # the first tempo opens the piece
        bar, offset = divmod(at, bar_len)
        marks[bar] = [(offset, qpm)]
        written = qpm
    return marks


def build_score(midi: str | Path | symusic.Score, title: str = "musicgen", split_tick: int | None = None,
                end_tick: int | None = None, first_bar: int = 1):
    """A music21 Score (grand staff, quantised, key and metre from the MIDI) ready for MusicXML.

    Notes from split_tick on are the new music (coloured, after a labelled double bar); with
    end_tick they stop being new there (rewritten bars inside a piece). Bars are numbered from
    first_bar (a part cut out of a longer piece keeps the piece's numbers)."""
    from music21 import bar, clef, expressions, instrument, key, layout, metadata, meter, note, stream, tempo

    score = read_midi(midi)
    notes = quantise(score)
    if not notes:
        raise MusicgenError("the MIDI has no notes to engrave")
    num, den = time_signature(score)
    bar_len = num * 16 // den
    n_bars = -(-max(end for _, end, _ in notes) // bar_len)
    split = None if split_tick is None else round(split_tick / score.tpq * STEPS_PER_QUARTER)
    end = None if end_tick is None else round(end_tick / score.tpq * STEPS_PER_QUARTER)
    sharps = key_sharps(score, notes)
    key_alter = {
        step: (1 if sharps > 0 else -1) for step in ("FCGDAEB" if sharps > 0 else "BEADGCF")[: abs(sharps)]
    }
    marks = tempo_marks(score)

    out = stream.Score()
    out.metadata = metadata.Metadata(title=title)
    staves = []
    for treble in (True, False):
        part = stream.PartStaff()
        piano = instrument.Instrument()
        piano.partId = "P1"  # music21 would pick a random id: same MIDI, same MusicXML
        part.insert(0, piano)
        staff = [n for n in notes if (n[2] >= SPLIT_PITCH) == treble]
        chunks = staff_chunks(staff, bar_len, n_bars, split, compound=den == 8 and num % 3 == 0, end=end)
        for i, bar_chunks in enumerate(chunks):
            m = stream.Measure(number=first_bar + i)
            if i == 0:
                m.append(
                    [
                        clef.TrebleClef() if treble else clef.BassClef(),
                        key.KeySignature(sharps),
                        meter.TimeSignature(f"{num}/{den}"),
                    ]
                )
            if treble:  # the tempo at the start, and a new mark wherever it changes
                for at, qpm in marks.get(i, []):
                    m.insert(at / STEPS_PER_QUARTER, tempo.MetronomeMark(number=qpm, referent=1.0))
            if split and i * bar_len <= split < (i + 1) * bar_len:
                if split % bar_len == 0:
                    m.leftBarline = bar.Barline("double")
                if treble:
                    label = expressions.TextExpression("continuation" if end is None else "rewritten")
                    label.style.color = CONTINUATION_COLOR
                    label.placement = "above"
                    m.insert((split % bar_len) / STEPS_PER_QUARTER, label)
            if end and i * bar_len == end:  # the rewritten bars end on a bar line
                m.leftBarline = bar.Barline("double")
            accidentals: dict[tuple[str, int], int] = {}  # alterations in force in this bar
            empty = all(not c.pitches for c in bar_chunks)
            if empty:
                m.append(note.Rest(quarterLength=bar_len / STEPS_PER_QUARTER, fullMeasure=True))
            for c in bar_chunks:
                at = c.offset / STEPS_PER_QUARTER
                if c.pitches:
                    m.insert(at, _chord(c, sharps, key_alter, accidentals))
                elif not empty:
                    m.insert(at, note.Rest(quarterLength=c.length / STEPS_PER_QUARTER))
            part.append(m)
        staves.append(part)
    for part in staves:
        part.makeBeams(inPlace=True)
        out.insert(0, part)
    out.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    if split and end is None:
        seed = expressions.TextExpression("seed")
        seed.placement = "above"
        staves[0].getElementsByClass(stream.Measure).first().insert(0, seed)
    return out


def musicxml_text(
    midi: str | Path | symusic.Score, title: str = "musicgen", split_tick: int | None = None,
    end_tick: int | None = None, first_bar: int = 1,
) -> str:
    """MusicXML for the score (build_score's marks and numbers), without music21's default
    'Music21' composer."""
    from music21.musicxml.m21ToXml import ScoreExporter

    # makeNotation=False: we built complete measures, beams and accidentals already, and
    # music21's makeNotation pass (a deep copy plus re-quantising) costs most of the time.
    score = build_score(midi, title, split_tick, end_tick, first_bar)
    root = ScoreExporter(score, makeNotation=False).parse()
    for ident in root.iter("identification"):
        for creator in ident.findall("creator"):
            ident.remove(creator)
    ET.indent(root, space=" ")  # one element per line: readable and diffable
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def midi_to_musicxml(
    midi: str | Path | symusic.Score, path: str | Path, title: str = "musicgen", split_tick: int | None = None
) -> None:
    """Write the quantised grand-staff score as a MusicXML file."""
    Path(path).write_text(musicxml_text(midi, title, split_tick), encoding="utf-8")


_TOOLKIT = None
_TOOLKIT_LOCK = threading.Lock()  # a verovio toolkit holds one document at a time


def midi_to_svg(
    midi: str | Path | symusic.Score,
    title: str = "musicgen",
    split_tick: int | None = None,
    page_width: int = 1000,
) -> str:
    """Engrave the score as one SVG, page_width pixels wide and as tall as the music needs."""
    return musicxml_to_svg(musicxml_text(midi, title, split_tick), page_width)


def musicxml_to_svg(xml: str, page_width: int = 1000) -> str:
    """Engrave MusicXML text with verovio as one SVG page_width pixels wide."""
    return engrave(xml, (page_width,))[0][0]


def engrave(xml: str, page_widths: tuple[int, ...] = (1000,)) -> tuple[list[str], list[tuple[float, str]]]:
    """(one SVG per page width, the onsets): the MusicXML engraved by verovio at each width (the
    same element ids in all of them), and [(quarter notes from the start, "id id ...")] of the
    notes struck at each onset, for a player's cursor."""
    global _TOOLKIT
    try:
        import verovio
    except ImportError as err:
        raise ImportError("engraving scores needs verovio: pip install verovio") from err
    svgs = []
    with _TOOLKIT_LOCK:
        if _TOOLKIT is None:
            # errors only: a dense score on a phone's width warns, per system, that it is tight
            verovio.enableLog(verovio.LOG_ERROR)
            _TOOLKIT = verovio.toolkit()
        for i, width in enumerate(page_widths):
            _TOOLKIT.setOptions(
                {
                    "scale": SCALE,
                    "pageWidth": width * 100 // SCALE,
                    "pageHeight": 60000,  # verovio's maximum: one tall page for most pieces
                    "adjustPageHeight": True,
                    "footer": "none",
                    "spacingSystem": 10,
                    "breaks": "auto",
                    "xmlIdSeed": 1,  # element ids from a fixed seed: same MusicXML, same SVG
                }
            )
            if i == 0 and not _TOOLKIT.loadData(xml):
                raise RuntimeError("verovio could not read the MusicXML built from this MIDI")
            if i > 0:
                _TOOLKIT.redoLayout()  # the same document (and ids), broken into narrower systems
            pages = [_TOOLKIT.renderToSVG(p) for p in range(1, _TOOLKIT.getPageCount() + 1)]
            svg = pages[0] if len(pages) == 1 else _stack_pages(pages)
            svgs.append(re.sub(r"\n\s*", "", svg))  # verovio's indentation: 40% of the bytes
        onsets = [(float(e["qstamp"]), " ".join(e["on"])) for e in _TOOLKIT.renderToTimemap() if e.get("on")]
    return svgs, onsets


def _stack_pages(pages: list[str]) -> str:
    """Stack several verovio page SVGs vertically into one SVG document."""
    sizes = [
        tuple(float(v) for v in re.search(r'width="([\d.]+)px" height="([\d.]+)px"', p).groups())
        for p in pages
    ]
    width, height = max(w for w, _ in sizes), sum(h for _, h in sizes)
    body, y = [], 0.0
    for page, (_, h) in zip(pages, sizes, strict=True):
        body.append(page.replace("<svg ", f'<svg y="{y}" ', 1))
        y += h
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width}px" height="{height}px">{"".join(body)}</svg>'
    )
