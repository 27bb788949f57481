"""Hostile and careless input, in the library: every file gets one clear sentence or a bounded
result, never a parser's internals, an hour-long buffer or a traceback."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import make_score

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError
from musicgen.sample import MAX_SEED_NOTES, MAX_SILENT_BARS, Generator, SampleConfig

TPQ = 480


def chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def midi(events: bytes = b"\x00\x90\x3c\x40" + vlq(TPQ) + b"\x80\x3c\x00", division: int = TPQ,
         header_extra: bytes = b"") -> bytes:
    """A type-0 MIDI file of one track holding `events` (and its end-of-track)."""
    header = chunk(b"MThd", struct.pack(">HHH", 0, 1, division) + header_extra)
    return header + chunk(b"MTrk", events + b"\x00\xff\x2f\x00")


def note_after(rest_ticks: int, length_ticks: int = TPQ) -> bytes:
    return vlq(rest_ticks) + b"\x90\x3c\x40" + vlq(length_ticks) + b"\x80\x3c\x00"


HOURS = 3600 * 2 * TPQ  # ticks in an hour at the default 120 quarter notes a minute


def test_a_longer_header_is_read_as_the_spec_allows():
    score = tk.read_midi(midi(header_extra=b"\x00\x00\x00\x00"))  # MThd of length 10
    assert score.tpq == TPQ and score.note_num() == 1


@pytest.mark.parametrize("data, words", [
    (midi(division=0), "time division is 0 ticks per quarter note"),
    (midi(division=0xE728), "SMPTE frames"),
    (midi()[:20], "damaged or cut short"),
    (midi()[:14] + b"MTrk" + struct.pack(">I", 10**6) + b"\x00\x90\x3c\x40", "damaged or cut short"),
    (midi(b"\xff\xff\xff\xff\xff\x90\x3c\x40"), "damaged or cut short"),  # a 5-byte delta time
    (b"MThd\x00\x00\x00\x02\x00", "header is cut short"),
], ids=["division-0", "smpte", "truncated", "false-chunk-length", "five-byte-delta", "short-header"])
def test_broken_files_get_one_sentence_without_the_parser_internals(data, words):
    with pytest.raises(MusicgenError, match=words) as err:
        tk.read_midi(data)
    assert "iostream" not in str(err.value) and "MiniMidi" not in str(err.value)


def test_impossible_meters_and_zero_tempos_are_dropped():
    # a time signature 4/2^255 (denominator 0 in 8 bits) and a tempo of 0 microseconds a quarter
    score = tk.read_midi(midi(b"\x00\xff\x58\x04\x04\xff\x18\x08\x00\xff\x51\x03\x00\x00\x00"
                              + note_after(0)))
    assert list(score.time_signatures) == [] and list(score.tempos) == []
    assert score.note_num() == 1


def test_hours_of_silence_in_a_seed_are_cut_to_a_few_bars_with_a_note():
    gen = Generator()
    seed = tk.read_midi(midi(note_after(46 * HOURS // 10)))  # one note after 4.6 hours of rest (8,280 bars)
    ids, notes = gen.seed_tokens(seed)
    bar_id = gen.grammar.bar_id
    assert ids.count(bar_id) == MAX_SILENT_BARS + 1  # four silent bars, then the note's
    assert notes == [f"8276 silent bars of the seed were left out (no more than {MAX_SILENT_BARS} in a row "
                     "are kept)"]


def test_silent_runs_keep_their_length_up_to_the_limit_and_meters_survive():
    notes = [(0, 1, 60, 80), (4 * 3, 1, 62, 80), (4 * 20, 1, 64, 80)]  # gaps of 2 and 16 empty bars
    score = make_score(notes, time_sig=(4, 4))
    out, removed = tk.drop_silent_bars(score, MAX_SILENT_BARS)
    assert removed == 16 - MAX_SILENT_BARS
    starts = [n.time // (4 * TPQ) for n in out.tracks[0].notes]
    assert starts == [0, 3, 3 + MAX_SILENT_BARS + 1]  # the short gap kept, the long one cut to 4
    assert [(t.numerator, t.denominator) for t in out.time_signatures] == [(4, 4)]


def test_a_huge_seed_is_cut_to_its_last_bars_before_it_is_tokenized():
    rng = np.random.default_rng(0)
    notes = [(i / 4, 0.25, int(p), 70) for i in range(MAX_SEED_NOTES) for p in rng.choice(48, 2) + 36]
    gen = Generator()
    ids, notes_out = gen.seed_tokens(make_score(notes))
    assert len(ids) <= 16384 and notes_out[0].startswith("the seed was long: only its last")
    assert int(notes_out[0].split("last ")[1].split()[0]) == ids.count(gen.grammar.bar_id)


def test_audio_is_rendered_for_at_most_the_cap_and_long_notes_end_there():
    from musicgen.render import render_audio

    score = tk.read_midi(midi(b"\x00\x90\x3c\x40" + vlq(3 * HOURS) + b"\x80\x3c\x00"))  # one 3-hour note
    audio = render_audio(score, sample_rate=8000, max_seconds=30.0)
    assert audio.shape == (round((30.0 + 0.8) * 8000), 2)  # the cap and the tail, not three hours


def test_a_file_whose_music_starts_after_the_cap_is_told_so():
    from musicgen.render import render_audio

    with pytest.raises(MusicgenError, match="first note comes after 1 minutes"):
        render_audio(tk.read_midi(midi(note_after(HOURS))), sample_rate=8000, max_seconds=60.0)


@pytest.mark.parametrize("field", ["bars", "temperature", "top_p", "seed", "tempo", "variations"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, "8"],
                         ids=["nan", "inf", "none", "string"])
def test_every_number_refuses_nan_inf_none_and_strings_by_name(field, value):
    with pytest.raises(MusicgenError, match=rf"^{field.replace('_', '-')} must be a (whole )?number from"):
        SampleConfig(**{field: value})


# ---- the seed's tempo and key (issue 17, item 5) ----------------------------------------------

def tempos_from(score, tick: int) -> set[float]:
    """The tempi in force from `tick` on (the one in force there, and any change after it)."""
    before = [t.qpm for t in score.tempos if t.time <= tick]
    return {round(q, 1) for q in before[-1:] + [t.qpm for t in score.tempos if t.time > tick]}


def test_a_continuation_keeps_its_seeds_tempo_unless_asked_to_vary_it():
    gen = Generator()
    seed = make_score([(i, 1, 60 + i % 5, 80) for i in range(32)], tempos=((0, 80.0),))
    for s in range(3):
        held = gen.generate(seed, SampleConfig(bars=16, seed=s, temperature=1.5))
        assert tempos_from(held.scores[0], held.split_tick) == {81.3}  # 80, on the tempo token grid
    varied = [gen.generate(seed, SampleConfig(bars=16, seed=s, temperature=1.5, vary_tempo=True))
              for s in range(3)]
    assert any(len(tempos_from(v.scores[0], v.split_tick)) > 1 for v in varied)  # the model moves


def test_from_scratch_the_model_picks_one_tempo_for_the_whole_piece():
    out = Generator().generate(None, SampleConfig(bars=16, seed=2, temperature=1.5))
    assert len(out.scores[0].tempos) == 1 and out.scores[0].tempos[0].time == 0


@pytest.mark.parametrize("sig, expected", [((3, 1), (3, 1)), ((-2, 0), (-2, 0))], ids=["3-sharps", "2-flats"])
def test_every_output_carries_its_seeds_key_signature(sig, expected):
    import symusic

    from musicgen.render.score import musicxml_text

    seed = make_score([(i, 1, p, 80) for i, p in enumerate([66, 69, 73, 66, 68, 71, 74, 73] * 2)])
    seed.key_signatures.append(symusic.KeySignature(0, *sig))
    out = Generator().generate(seed, SampleConfig(bars=4, seed=0, variations=2))
    for score in out.scores:
        assert [(k.key, k.tonality) for k in score.key_signatures] == [expected]
        back = tk.read_midi(tk.to_midi_bytes(score))  # it survives the MIDI file
        assert [(k.key, k.tonality) for k in back.key_signatures] == [expected]
    assert f"<fifths>{expected[0]}</fifths>" in musicxml_text(out.scores[0], "t", out.split_tick)


def chorale() -> list[tuple]:
    """Four voices in A major, one chord a beat, 4/4: I IV V I, four times."""
    chords = [(45, 61, 64, 69), (50, 62, 66, 69), (52, 59, 64, 68), (45, 61, 64, 69)]
    return [(4 * b + i, 1, p, 70) for b in range(4) for i, c in enumerate(chords) for p in c]


def compound() -> list[tuple]:
    """9/8 in B-flat major: three dotted-quarter beats of eighths over a dotted-half bass."""
    line = [70, 74, 77, 74, 70, 74, 72, 75, 79]
    return [n for b in range(4) for n in [(4.5 * b + 0.5 * i, 0.5, p, 75) for i, p in enumerate(line)]
            + [(4.5 * b, 4.5, 46, 60)]]


@pytest.mark.parametrize("notes, meter, key", [(chorale(), (4, 4), (3, 0)), (compound(), (9, 8), (-2, 0))],
                         ids=["3-sharp-chorale-4/4", "9/8-two-flats"])
def test_every_output_keeps_its_seeds_meter_key_and_tempo(notes, meter, key):
    import symusic

    from musicgen.render.score import musicxml_text

    seed = make_score(notes, tempos=((0, 80.0),), time_sig=meter)
    seed.key_signatures.append(symusic.KeySignature(0, *key))
    out = Generator().generate(seed, SampleConfig(bars=8, seed=0, variations=2))
    for score in out.scores:
        back = tk.read_midi(tk.to_midi_bytes(score))  # as the user's file has it
        bar = meter[0] * back.tpq * 4 // meter[1]
        assert [(t.numerator, t.denominator) for t in back.time_signatures] == [meter]
        assert [(k.key, k.tonality) for k in back.key_signatures] == [key]
        assert tempos_from(back, 0) == {81.3}  # 80 on the tempo grid, from the first bar to the last
        starts = tk.bar_starts(back, back.end() + 1)
        assert len(starts) >= 4 + 8 and set(np.diff(starts)) == {bar}
    xml = musicxml_text(out.scores[0], "t", out.split_tick)
    assert f"<beats>{meter[0]}</beats>" in xml and f"<beat-type>{meter[1]}</beat-type>" in xml
    assert f"<fifths>{key[0]}</fifths>" in xml


@pytest.mark.parametrize("text, expected", [
    ("A major", (9, "major", 3)), ("F# minor", (6, "minor", 3)), ("Bb", (10, "major", -2)),
    ("ebm", (3, "minor", -6)), ("D# minor", (3, "minor", 6)), ("Gb major", (6, "major", -6)),
    ("F# major", (6, "major", 6)), ("C# major", (1, "major", 7)), ("Ab minor", (8, "minor", -7))])
def test_a_named_key_is_read_and_its_signature_spelled_as_written(text, expected):
    from musicgen.keys import parse_key

    assert parse_key(text) == expected


def test_from_scratch_the_user_sets_key_meter_and_tempo():
    from musicgen.coherence import estimate_key

    out = Generator().generate(None, SampleConfig(bars=8, seed=1, key="A major", meter="9/8", tempo=70,
                                                  variations=2))
    for score in out.scores:
        back = tk.read_midi(tk.to_midi_bytes(score))
        assert [(t.numerator, t.denominator) for t in back.time_signatures] == [(9, 8)]
        assert [(k.key, k.tonality) for k in back.key_signatures] == [(3, 0)]
        assert [round(t.qpm) for t in back.tempos] == [70]
        assert set(np.diff(tk.bar_starts(back, back.end() + 1))) == {9 * back.tpq // 2}
    assert estimate_key(out.scores[0]) == (9, "major")  # the notes are in it too, not only the signature


def test_from_scratch_without_a_key_the_output_carries_the_key_its_notes_suggest():
    from musicgen.keys import seed_key

    out = Generator().generate(None, SampleConfig(bars=4, seed=0))
    sig = seed_key(tk.read_midi(tk.to_midi_bytes(out.scores[0])))
    assert len(out.scores[0].key_signatures) == 1 and out.scores[0].key_signatures[0].key == sig.key


@pytest.mark.parametrize("knob, message", [({"key": "H major"}, "key must be a note name"),
                                           ({"meter": "nine eighths"}, "meter must be like"),
                                           ({"meter": "11/16"}, "knows no 11/16 meter; choose one of: .*9/8"),
                                           ])
def test_a_key_or_meter_that_cannot_be_is_one_sentence(knob, message):
    with pytest.raises(MusicgenError, match=message):
        Generator().generate(None, SampleConfig(bars=2, **knob))


def test_a_seed_without_a_key_signature_gets_the_key_its_notes_suggest():
    a_major = [69, 71, 73, 74, 76, 78, 80, 81, 76, 73, 69, 64]  # A major scale and arpeggio
    out = Generator().generate(make_score([(i, 1, p, 80) for i, p in enumerate(a_major)]),
                               SampleConfig(bars=2, seed=0))
    assert [(k.key, k.tonality) for k in out.scores[0].key_signatures] == [(3, 0)]
