"""MIDI -> tokens -> MIDI keeps what matters; bad files give clear errors."""

import numpy as np
import pytest
import symusic
from conftest import make_score, write_score

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError


def round_trip(score: symusic.Score, tmp_path) -> tuple[symusic.Score, symusic.Score]:
    tok = tk.make_tokenizer(["alpha"])
    src = tk.read_midi(write_score(score, tmp_path / "in.mid"))
    prepared = tk.prepare(src)
    return prepared, tk.decode(tok, tk.encode(tok, prepared, "alpha"))


def note_table(score: symusic.Score, tok=None) -> list[tuple]:
    """(onset in quarters, duration in quarters, pitch, velocity bin) sorted."""
    bins = np.array(tk.make_tokenizer([]).velocities)
    rows = []
    for n in score.tracks[0].notes:
        vel_bin = int(bins[np.abs(bins - n.velocity).argmin()])
        rows.append((n.time / score.tpq, n.duration / score.tpq, n.pitch, vel_bin))
    return sorted(rows)


CASES = {
    "scale": make_score([(i * 0.5, 0.5, 60 + s, 70) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12])]),
    "chords": make_score([(q, 1, p, 90) for q in (0, 1, 2, 3) for p in (60, 64, 67)]),
    "two_hands": make_score([(0, 2, 72, 80, 0), (2, 2, 74, 77, 0), (0, 4, 48, 50, 1), (0, 4, 55, 50, 1)],
                            tracks=2),
    "three_four": make_score([(q, 1, 62 + (q % 3), 64) for q in range(9)], time_sig=(3, 4)),
    "tempo_change": make_score([(q, 1, 60 + q, 100) for q in range(16)], tempos=((0, 90.0), (8, 150.0))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_keeps_pitch_onset_duration_velocity_bin(name, tmp_path):
    prepared, decoded = round_trip(CASES[name], tmp_path)
    assert note_table(decoded) == note_table(prepared)
    assert len(note_table(decoded)) == CASES[name].note_num()


def test_round_trip_keeps_meter_and_tempo_per_bar(tmp_path):
    _, three = round_trip(CASES["three_four"], tmp_path)
    assert (three.time_signatures[0].numerator, three.time_signatures[0].denominator) == (3, 4)
    _, changed = round_trip(CASES["tempo_change"], tmp_path)
    qpm = {round(t.time / changed.tpq): t.qpm for t in changed.tempos}
    assert abs(qpm[0] - 90) / 90 < 0.05  # 32 log-spaced tempo bins: within 5%
    assert abs(qpm[8] - 150) / 150 < 0.05


def test_prepare_merges_hands_drops_drums_and_folds_pitches():
    score = make_score([(0, 1, 60, 80, 0), (0, 1, 40, 80, 1), (1, 1, 10, 80, 0), (1, 1, 120, 80, 1)],
                       tracks=2)
    drums = symusic.Track(name="drums", program=0, is_drum=True)
    drums.notes.append(symusic.Note(0, 480, 38, 100))
    score.tracks.append(drums)
    prepared = tk.prepare(score)
    assert len(prepared.tracks) == 1
    assert sorted(n.pitch for n in prepared.tracks[0].notes) == [22, 40, 60, 108]


def test_bar_starts_follow_meter_changes():
    score = make_score([(0, 1, 60, 80), (20, 1, 60, 80)], time_sig=(3, 4))
    score.time_signatures.append(symusic.TimeSignature(6 * 480, 2, 4))  # two bars of 3/4, then 2/4
    assert list(tk.bar_starts(score) // 480) == [0, 3, 6, 8, 10, 12, 14, 16, 18, 20]


@pytest.mark.parametrize("data, message", [
    (b"hello, not music", "not a MIDI file"),
    (b"", "not a MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff", "damaged or cut short"),
])
def test_read_midi_rejects_junk_with_a_clear_message(data, message):
    with pytest.raises(MusicgenError, match=message):
        tk.read_midi(data)


def test_read_midi_rejects_huge_files():
    with pytest.raises(MusicgenError, match="larger than"):
        tk.read_midi(b"MThd" + b"\0" * (tk.MAX_MIDI_BYTES + 1))


def test_tick_to_seconds_follows_tempo_changes():
    score = make_score([(0, 1, 60, 80)], tempos=((0, 120.0), (4, 60.0)))
    secs = tk.tick_to_seconds(score, np.array([0, 4 * 480, 5 * 480]))
    assert np.allclose(secs, [0.0, 2.0, 3.0])


METERS = {  # (numerator, denominator): a piece of four bars, a note on every eighth of the bar
    meter: make_score([(i * 0.5, 0.5, 60 + i % 12, 80) for i in range(4 * meter[0] * 8 // meter[1])],
                      time_sig=meter)
    for meter in [(7, 4), (9, 8), (5, 4), (12, 8), (2, 8), (6, 16)]
}


@pytest.mark.parametrize("meter", list(METERS), ids=[f"{n}-{d}" for n, d in METERS])
def test_every_corpus_meter_round_trips_with_its_bars(meter, tmp_path):
    prepared, decoded = round_trip(METERS[meter], tmp_path)
    assert [(t.numerator, t.denominator) for t in decoded.time_signatures] == [meter]
    assert note_table(decoded) == note_table(prepared)
    assert len(tk.bar_starts(decoded)) == 4


def test_a_bar_has_numerator_times_eight_positions_whatever_the_denominator():
    # what sample.Grammar assumes: bar_len = numerator * POSITIONS_PER_BEAT, for x/8 and x/16 too
    tok = tk.make_tokenizer([])
    for meter, last in (((9, 8), 4.0), ((6, 16), 1.25), ((7, 4), 6.5)):  # quarters into the bar's last beat
        score = make_score([(0, 0.25, 60, 80), (last, 0.25, 62, 80)], time_sig=meter)
        ids = tk.encode(tok, tk.prepare(score))
        names = {i: t for t, i in tok.vocab.items()}
        positions = [int(names[i].split("_")[1]) for i in ids if names[i].startswith("Position_")]
        assert positions[-1] == round(last * meter[1] / 4 * tk.POSITIONS_PER_BEAT) < meter[0] * 8
        assert positions[-1] >= (meter[0] - 1) * 8  # in the bar's last beat


def test_the_tokenizer_covers_the_corpus_meters_and_a_saved_one_keeps_its_own(tmp_path):
    tok = tk.make_tokenizer([])
    meters = {t for t in tok.vocab if t.startswith("TimeSig_")}
    assert {"TimeSig_2/8", "TimeSig_6/16", "TimeSig_9/8", "TimeSig_12/8", "TimeSig_5/4", "TimeSig_7/4",
            "TimeSig_48/32", "TimeSig_4/4"} <= meters
    from musicgen.checkpoint import DEFAULT_CHECKPOINT

    shipped = tk.load_tokenizer(DEFAULT_CHECKPOINT / "tokenizer.json")  # the shipped model has them all
    assert meters <= set(shipped.vocab) and len(shipped.vocab) == 780
    from miditok import REMI, TokenizerConfig

    REMI(TokenizerConfig(use_time_signatures=True, time_signature_range={4: [4]})).save(tmp_path / "old.json")
    old = tk.load_tokenizer(tmp_path / "old.json")  # as the first shipped model's: 4/4 and little else
    assert "TimeSig_4/4" in old.vocab and "TimeSig_7/4" not in old.vocab
