"""MIDI <-> tokens: MidiTok's REMI over one merged piano stream, opened by a style token.

A piece becomes `Style_<composer> Bar TimeSig Position [Tempo] Pitch Velocity Duration ...`.
MidiTok (symusic backend) does the encoding; this module does the piano-specific glue:
merging hands, dropping drums, folding out-of-range notes, one tempo per bar, style tokens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import symusic
from miditok import REMI, TokenizerConfig

from musicgen.errors import MusicgenError

PITCH_RANGE = (21, 109)  # the 88 keys A0..C8; notes outside are folded into range by octaves
BEAT_RES = {(0, 4): 8, (4, 12): 4}  # 32nd-note grid inside a beat, coarser for long notes
NUM_VELOCITIES = 16  # enough dynamic shades for a piano; fewer tokens to learn than 32
NUM_TEMPOS = 32
TEMPO_RANGE = (40, 250)
POSITIONS_PER_BEAT = 8  # REMI positions per time-signature beat (max of BEAT_RES)
MAX_DURATION_BEATS = max(hi for _, hi in BEAT_RES)  # the longest Duration token: 12 beats
# {denominator: numerators}: every meter the five corpora use (scripts/scan_meters.py) and MidiTok's
# defaults. MidiTok drops a meter it lacks and counts the following bars in the meter before, so
# downbeats drift. REMI has 8 positions per beat of the meter (the denominator's note), so a bar is
# numerator * 8 positions whatever the denominator; 48/32 (a cadenza in Liszt's Don Juan) makes 384.
TIME_SIGNATURE_RANGE = {2: [1, 2, 3, 4], 4: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15],
                        8: [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 21],
                        16: [3, 4, 6, 9, 12, 13, 14, 15, 17, 18, 19, 20, 21, 28], 32: [11, 36, 37, 44, 48]}
ANY_STYLE = "any"
PREPARE_VERSION = "1"  # bump when prepare() changes, so cached corpora are rebuilt
MAX_MIDI_BYTES = 4_000_000  # larger files are not piano pieces a user means to continue
MIDI_SUFFIXES = (".mid", ".midi")  # compared lower-cased: .MID from old sequencers counts
# symusic.Score is a factory; these are the classes its scores have (ticks, quarters, seconds)
SCORE_TYPES = (symusic.core.ScoreTick, symusic.core.ScoreQuarter, symusic.core.ScoreSecond)


def style_token(style: str) -> str:
    """The token that opens a sequence of this style (composer) or of any style."""
    return f"Style_{style}"


def make_tokenizer(styles: list[str]) -> REMI:
    """A fresh REMI tokenizer whose vocabulary holds one style token per composer and every meter
    of TIME_SIGNATURE_RANGE (a saved tokenizer.json loads with the meters it was made with)."""
    names = sorted({s for s in styles if s != ANY_STYLE})
    config = TokenizerConfig(
        pitch_range=PITCH_RANGE,
        beat_res=BEAT_RES,
        num_velocities=NUM_VELOCITIES,
        use_tempos=True,
        num_tempos=NUM_TEMPOS,
        tempo_range=TEMPO_RANGE,
        log_tempos=True,  # rubato is relative: equal ratios deserve equal steps
        delete_equal_successive_tempo_changes=True,
        use_time_signatures=True,
        time_signature_range=TIME_SIGNATURE_RANGE,
        use_programs=False,
        special_tokens=["PAD", style_token(ANY_STYLE)] + [style_token(s) for s in names],
    )
    return REMI(config)


def load_tokenizer(path: str | Path) -> REMI:
    """The tokenizer saved beside a checkpoint (tokenizer.json)."""
    return REMI(params=Path(path))


def styles_of(tokenizer: REMI) -> list[str]:
    """The styles a tokenizer can be steered to, 'any' first."""
    names = [t.split("_", 1)[1] for t in tokenizer.vocab if t.startswith("Style_")]
    return [ANY_STYLE] + sorted(n for n in names if n != ANY_STYLE)


def read_midi(source: str | Path | bytes | symusic.Score) -> symusic.Score:
    """A tick-based Score from a MIDI file, its bytes or a Score; anything unreadable raises
    MusicgenError. The one MIDI loader: the tokenizer, the renderers and the critic share it."""
    if isinstance(source, SCORE_TYPES):
        return source if source.ttype == symusic.TimeUnit.tick else source.to("tick")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise MusicgenError(f"no such file: {path}")
        if path.stat().st_size > MAX_MIDI_BYTES:
            raise MusicgenError(f"{path.name} is larger than {MAX_MIDI_BYTES // 1_000_000} MB")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if len(data) > MAX_MIDI_BYTES:
        raise MusicgenError(f"the MIDI file is larger than {MAX_MIDI_BYTES // 1_000_000} MB")
    if data[:4] != b"MThd":
        raise MusicgenError("not a MIDI file (it does not start with 'MThd')")
    data = _standard_header(data)
    # symusic parses from a path; a private temp file keeps uploads out of the working tree
    fd, tmp = tempfile.mkstemp(suffix=".mid")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        score = symusic.Score(tmp)
    except Exception:  # symusic's own words name its parser's internals, not the user's problem
        raise MusicgenError("the MIDI file is damaged or cut short (it could not be read to its end); "
                            "export it again from the program that made it") from None
    finally:
        os.unlink(tmp)
    return _drop_impossible_events(score)


def _standard_header(data: bytes) -> bytes:
    """The file with its MThd chunk as symusic reads it: 6 bytes long, with a usable time division.

    The MIDI spec lets the header grow ("read and honor the length, even if it is longer than 6"):
    the extra bytes are dropped here instead of refusing the file.
    """
    length = int.from_bytes(data[4:8], "big")
    if length < 6 or len(data) < 8 + length:
        raise MusicgenError("the MIDI file's header is cut short; export it again from the program "
                            "that made it")
    division = int.from_bytes(data[12:14], "big")
    if division == 0:
        raise MusicgenError("the MIDI file's time division is 0 ticks per quarter note, so its notes have no "
                            "timing; export it again from the program that made it")
    if division & 0x8000:
        raise MusicgenError("the MIDI file counts time in SMPTE frames, not beats; export it with "
                            "ticks per quarter note (the usual setting)")
    return data[:4] + (6).to_bytes(4, "big") + data[8:14] + data[8 + length:]


def _drop_impossible_events(score: symusic.Score) -> symusic.Score:
    """The score without meters no bar can have (x/0, 0/x, a denominator that is no power of two)
    and without tempo events of zero microseconds per quarter: they make bars or seconds infinite."""
    sigs = [ts for ts in score.time_signatures
            if 1 <= ts.numerator <= 64 and ts.denominator in (1, 2, 4, 8, 16, 32, 64)]
    if len(sigs) != len(score.time_signatures):
        score.time_signatures = sigs
    tempos = [t for t in score.tempos if t.mspq > 0]
    if len(tempos) != len(score.tempos):
        score.tempos = tempos
    return score


def fold_pitch(pitch: int) -> int:
    """Move a pitch by octaves into the piano's range."""
    lo, hi = PITCH_RANGE
    while pitch < lo:
        pitch += 12
    while pitch >= hi:
        pitch -= 12
    return pitch


def tick_to_seconds(score: symusic.Score, ticks: np.ndarray) -> np.ndarray:
    """Seconds at each tick under the score's tempo map."""
    tempos = sorted(((t.time, t.mspq) for t in score.tempos), key=lambda x: x[0])
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, 500_000))  # MIDI's default 120 qpm until the first tempo event
    starts = np.array([t for t, _ in tempos], dtype=np.float64)
    sec_per_tick = np.array([m for _, m in tempos], dtype=np.float64) / 1e6 / score.tpq
    offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
    ticks = np.asarray(ticks, dtype=np.float64)
    i = np.searchsorted(starts, ticks, side="right") - 1
    return offsets[i] + (ticks - starts[i]) * sec_per_tick[i]


def bar_starts(score: symusic.Score, end_tick: int | None = None) -> np.ndarray:
    """Tick of every bar start up to end_tick (default: the score's end), following meter changes."""
    end = score.end() if end_tick is None else end_tick
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    starts, t = [], 0
    for i, (time, num, den) in enumerate(sigs):
        t = max(t, time)
        next_change = sigs[i + 1][0] if i + 1 < len(sigs) else end + 1
        bar = max(1, num * score.tpq * 4 // den)
        while t < next_change and (t < end or not starts):
            starts.append(t)
            t += bar
    return np.array(starts or [0], dtype=np.int64)


def prepare(score: symusic.Score) -> symusic.Score:
    """One piano track: hands merged, drums dropped, pitches folded, one tempo per bar, no note
    longer than the longest duration token (REMI would cut it there anyway)."""
    out = symusic.Score(score.tpq)
    out.time_signatures = score.time_signatures
    track = symusic.Track(name="Piano", program=0)
    longest = MAX_DURATION_BEATS * score.tpq
    for t in score.tracks:
        if t.is_drum:
            continue
        for n in t.notes:
            if n.duration > 0:
                track.notes.append(symusic.Note(n.time, min(n.duration, longest), fold_pitch(n.pitch),
                                                n.velocity))
    track.notes.sort()
    out.tracks.append(track)
    if not track.notes:
        return out
    # The corpus carries expression as a tempo change every few beats; one tempo per bar
    # (the bar's true average) keeps each bar's length in seconds for a fraction of the tokens.
    starts = bar_starts(score, track.end())
    bounds = np.append(starts, starts[-1] + (starts[-1] - starts[-2] if len(starts) > 1 else score.tpq * 4))
    secs = tick_to_seconds(score, bounds)
    for i, tick in enumerate(starts):
        quarters = (bounds[i + 1] - tick) / score.tpq
        qpm = 60.0 * quarters / max(secs[i + 1] - secs[i], 1e-6)
        out.tempos.append(symusic.Tempo(int(tick), float(np.clip(qpm, *TEMPO_RANGE))))
    return out


def drop_silent_bars(score: symusic.Score, keep: int) -> tuple[symusic.Score, int]:
    """(the score with every run of more than `keep` bars in which nothing sounds cut to `keep`
    bars, how many bars were removed). Tempo and meter changes inside a removed stretch take effect
    where it ends. Bounds what a seed of one note after hours of rest costs to prime and render."""
    starts = bar_starts(score)
    notes = [n for t in score.tracks for n in t.notes]
    if not notes or len(starts) < 2:
        return score, 0
    sounding = np.zeros(len(starts), bool)
    for n in notes:  # the bars each note sounds in
        first = np.searchsorted(starts, n.time, side="right") - 1
        last = np.searchsorted(starts, n.time + max(n.duration, 1) - 1, side="right") - 1
        sounding[first:last + 1] = True
    ends = np.append(starts[1:], max(score.end(), starts[-1] + 1))
    cuts, run = [], 0  # (start tick, end tick) of each removed stretch
    for i, busy in enumerate(sounding):
        run = 0 if busy else run + 1
        if run > keep:
            if cuts and cuts[-1][1] == starts[i]:
                cuts[-1] = (cuts[-1][0], int(ends[i]))
            else:
                cuts.append((int(starts[i]), int(ends[i])))
    if not cuts:
        return score, 0

    def moved(tick: int) -> int:  # a tick inside a cut lands where the cut ends
        return tick - sum(min(max(tick - a, 0), b - a) for a, b in cuts)

    out = score.copy()
    for track in out.tracks:
        for n in track.notes:
            n.time = moved(n.time)
        for c in track.controls:
            c.time = moved(c.time)
        for p in track.pedals:
            p.time = moved(p.time)
    for events in (out.tempos, out.time_signatures, out.key_signatures):
        for e in events:
            e.time = moved(e.time)
    # of the changes that now share a tick, the last is the one in force
    out.tempos = _last_per_tick(out.tempos)
    out.time_signatures = _last_per_tick(out.time_signatures)
    removed = sum(int(((starts >= a) & (starts < b)).sum()) for a, b in cuts)
    return out, removed


def _last_per_tick(events) -> list:
    """Of time-ordered events that share a tick, only the last."""
    return [e for i, e in enumerate(events) if i + 1 == len(events) or events[i + 1].time != e.time]


def encode(tokenizer: REMI, score: symusic.Score, style: str | None = None) -> list[int]:
    """Token ids of a prepared score, opened by its style token when a style is given."""
    ids = []
    if style is not None:
        ids.append(tokenizer.vocab[style_token(style)])
    if score.note_num() > 0:
        seqs = tokenizer(score)
        seq = seqs[0] if isinstance(seqs, list) else seqs
        ids.extend(seq.ids)
    return ids


def decode(tokenizer: REMI, ids: list[int] | np.ndarray) -> symusic.Score:
    """A one-track piano Score from token ids; special tokens are ignored."""
    special = set(tokenizer.special_tokens_ids)
    body = [int(i) for i in ids if int(i) not in special]
    score = tokenizer.decode([body]) if body else symusic.Score(tokenizer.time_division)
    if not score.tracks:
        score.tracks.append(symusic.Track(name="Piano", program=0))
    score.tracks[0].name = "Piano"
    return score


def to_midi_bytes(score: symusic.Score) -> bytes:
    """Standard MIDI file bytes of a Score."""
    fd, tmp = tempfile.mkstemp(suffix=".mid")
    os.close(fd)
    try:
        score.dump_midi(tmp)
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


def midi_summary(score: symusic.Score) -> str:
    """One line a user can read: notes, bars, seconds."""
    secs = float(tick_to_seconds(score, np.array([score.end()]))[0])
    return f"{score.note_num()} notes, {len(bar_starts(score))} bars, {secs:.1f} s"

