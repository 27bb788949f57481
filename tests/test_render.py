"""Rendering: audio, score, roll and render_all, on tiny pieces built in code."""

import importlib.util
import re
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
import symusic

from musicgen.render import (
    FluidSynthMissingError,
    list_soundfonts,
    midi_to_musicxml,
    midi_to_roll_png,
    midi_to_svg,
    render_all,
    render_audio,
    write_mp3,
)
from musicgen.render.score import _stack_pages, spell

TPQ = 480
ROOT = Path(__file__).resolve().parents[1]


def piece(notes, tpq=TPQ, qpm=120.0, time_sig=(4, 4)) -> symusic.Score:
    """A one-track piano Score from (start_quarters, length_quarters, pitch) triples."""
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm))
    score.time_signatures.append(symusic.TimeSignature(0, *time_sig))
    track = symusic.Track("piano", 0, False)
    for start, length, pitch in notes:
        track.notes.append(symusic.Note(round(start * tpq), round(length * tpq), pitch, 90))
    score.tracks.append(track)
    return score


def scale(n=8, start=60) -> list[tuple[float, float, int]]:
    """n quarter notes of a C major scale upwards from start."""
    steps = [0, 2, 4, 5, 7, 9, 11]
    return [(i, 1, start + 12 * (i // 7) + steps[i % 7]) for i in range(n)]


def peak_db(audio: np.ndarray) -> float:
    return 20 * np.log10(np.abs(audio).max())


# --- audio -----------------------------------------------------------------------------


@pytest.mark.parametrize("qpm", [60.0, 150.0], ids=["slow", "fast"])
def test_audio_length_matches_midi_and_peak_is_normalised(qpm):
    score = piece(scale(8), qpm=qpm)
    audio = render_audio(score)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 2
    assert abs(len(audio) / 44100 - score.to("second").end()) < 1.0
    assert -6.0 <= peak_db(audio) <= -0.1


def test_audio_of_a4_sounds_at_440_hz():
    audio = render_audio(piece([(0, 2, 69)])).mean(axis=1)[:44100]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert abs(np.fft.rfftfreq(len(audio), 1 / 44100)[spectrum.argmax()] - 440) < 3


def test_quiet_midi_is_still_loud_enough():
    score = piece([(0, 1, 60)])
    score.tracks[0].notes[0].velocity = 5
    assert peak_db(render_audio(score)) >= -6.0


def test_other_instruments_play_as_the_piano_without_fluidsynth_errors(capfd):
    score = piece(scale(4))
    reference = render_audio(score)
    score.tracks[0].program = 40  # a violin: the shipped soundfont has only the piano
    audio = render_audio(score)
    assert np.array_equal(audio, reference)
    assert "error" not in capfd.readouterr().err  # FluidSynth writes to the process's stderr


def test_audio_renders_from_a_midi_path_and_other_sample_rates(tmp_path):
    path = tmp_path / "scale.mid"
    piece(scale(4)).dump_midi(str(path))
    audio = render_audio(path, sample_rate=22050)
    assert abs(len(audio) / 22050 - 2.0) < 1.0


def test_renders_repeat_exactly_in_series_and_in_parallel():
    score = piece(scale(6))
    expected = render_audio(score)
    render_audio(piece([(0, 4, 40)]))  # another piece between must not leak into the next
    results = [render_audio(score)] + [None] * 3

    def work(i):
        results[i] = render_audio(score)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, expected)


def test_missing_fluidsynth_raises_an_error_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` fail
    with pytest.raises(FluidSynthMissingError) as err:
        render_audio(piece([(0, 1, 60)]))
    assert isinstance(err.value, RuntimeError)
    assert "sudo apt-get install libfluidsynth3" in str(err.value)
    assert "brew install fluid-synth" in str(err.value)


def test_mp3_is_a_decodable_file_of_the_right_length(tmp_path):
    audio = render_audio(piece(scale(4)))
    path = tmp_path / "a.mp3"
    write_mp3(audio, path)
    head = path.read_bytes()[:2]
    assert head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MPEG frame sync
    decoded, rate = soundfile.read(str(path))
    assert rate == 44100 and decoded.shape[1] == 2
    assert abs(len(decoded) - len(audio)) < 0.1 * 44100  # encoder padding only


def test_shipped_piano_soundfont_is_listed_first_and_small():
    name, path = next(iter(list_soundfonts().items()))
    assert name == "fluidr3-grand-piano" and path.is_file()
    assert path.stat().st_size <= 10_000_000


def test_soundfont_builder_round_trips_the_shipped_piano():
    # re-extracting the one preset of the shipped file must give back the very same bytes
    spec = importlib.util.spec_from_file_location("build_soundfont", ROOT / "scripts" / "build_soundfont.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    shipped = list_soundfonts()["fluidr3-grand-piano"]
    sf2, name = builder.extract(shipped, bank=0, preset=0)
    assert name == "Yamaha Grand Piano"
    assert sf2 == shipped.read_bytes()


# --- score -----------------------------------------------------------------------------


def count(svg: str, cls: str) -> int:
    """How many drawn elements of a verovio class the SVG holds (empty groups are not drawn)."""
    return len(re.findall(rf'class="{cls}"(?! />)', svg))


def test_svg_has_one_notehead_per_note():
    # halves, quarters, eighths and a chord, placed so that none needs a tie; both staves
    notes = [(0, 2, 72), (2, 1, 74), (3, 0.5, 76), (3.5, 0.5, 77), (4, 4, 60), (4, 4, 64), (4, 4, 67)]
    notes += [(0, 4, 48), (4, 2, 43), (6, 1, 45), (7, 1, 47)]
    svg = midi_to_svg(piece(notes))
    assert count(svg, "note") == len(notes)
    assert count(svg, "tie") == 0


def test_unquantised_timing_gives_no_tuplets():
    # a human-played scale: onsets and lengths off the grid by a few ticks
    rng = np.random.default_rng(0)
    notes = [(s + rng.uniform(-0.04, 0.04), 1 + rng.uniform(-0.06, 0.02), p) for s, _, p in scale(8)]
    svg = midi_to_svg(piece(notes))
    assert count(svg, "tuplet") == 0
    assert count(svg, "note") == 8


def test_three_four_in_d_major_shows_key_and_metre(tmp_path):
    d_major = [62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 66]  # no key signature in the MIDI
    score = piece([(i, 1, p) for i, p in enumerate(d_major)], time_sig=(3, 4))
    midi_to_musicxml(score, tmp_path / "d.musicxml")
    xml = (tmp_path / "d.musicxml").read_text()
    assert "<fifths>2</fifths>" in xml
    assert "<beats>3</beats>" in xml and "<beat-type>4</beat-type>" in xml
    svg = midi_to_svg(score)
    assert count(svg, "meterSig") == 2  # one per staff
    assert count(svg, "keyAccid") == 4  # F# and C# on each staff
    assert count(svg, "accid") == 0  # the key signature covers every F# and C#
    assert count(svg, "measure") == 4


def test_six_eight_writes_dotted_beats_without_ties():
    # dotted quarter, dotted quarter | dotted half | eighth + quarter, dotted quarter (then rests)
    notes = [(0, 1.5, 72), (1.5, 1.5, 74), (3, 3, 76), (6, 0.5, 77), (6.5, 1, 76), (7.5, 1.5, 74)]
    svg = midi_to_svg(piece(notes, time_sig=(6, 8)))
    assert count(svg, "note") == 6 and count(svg, "tie") == 0
    assert count(svg, "dots") == 4


def test_accidentals_print_once_per_bar_and_cancel_each_other():
    # B-flat major from the MIDI's own key signature:
    # bar 1: Bb (key), E natural (sign), E natural (none), Eb (sign); bar 2: E natural (sign)
    score = piece([(0, 1, 70), (1, 1, 64), (2, 1, 64), (3, 1, 63), (4, 4, 64)])
    score.key_signatures.append(symusic.KeySignature(0, -2, 0))
    svg = midi_to_svg(score)
    assert count(svg, "keyAccid") == 4
    assert count(svg, "accid") == 3


@pytest.mark.parametrize(
    "pitch, sharps, expected",
    [
        (66, 2, ("F", 1, 4)),
        (70, -2, ("B", -1, 4)),
        (61, -1, ("C", 1, 4)),
        (63, 0, ("E", -1, 4)),
        (68, 0, ("G", 1, 4)),
        (59, 7, ("B", 0, 3)),
        (60, 7, ("B", 1, 3)),
    ],
    ids=["F#-in-D", "Bb-in-Bb", "C#-in-d-minor", "Eb-in-C", "G#-in-a-minor", "B-in-C#", "B#-in-C#"],
)
def test_pitches_are_spelled_for_the_key(pitch, sharps, expected):
    assert spell(pitch, sharps) == expected


def test_continuation_is_marked_and_coloured(tmp_path):
    score = piece(scale(8))
    split = 4 * TPQ  # bar 2
    svg = midi_to_svg(score, title="Little scale", split_tick=split)
    assert "continuation" in svg and "seed" in svg
    assert len(re.findall(r'class="note"[^>]*color="#D9480F"|fill="#D9480F"', svg, re.I)) >= 4
    midi_to_musicxml(score, tmp_path / "s.musicxml", title="Little scale", split_tick=split)
    xml = (tmp_path / "s.musicxml").read_text()
    assert "<bar-style>light-light</bar-style>" in xml
    assert "Little scale" in xml and "Music21" not in xml and "Music21" not in svg


def test_several_verovio_pages_stack_into_one_svg():
    pages = ['<svg width="100px" height="40px"><g/></svg>', '<svg width="90px" height="60px"><g/></svg>']
    svg = _stack_pages(pages)
    assert svg.startswith("<svg") and 'width="100.0px" height="100.0px"' in svg
    assert '<svg y="40.0" width="90px"' in svg


# --- roll ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1200, 400), (333, 211)], ids=["default", "odd"])
def test_roll_png_has_the_requested_pixel_size(tmp_path, size):
    path = tmp_path / "roll.png"
    midi_to_roll_png(piece(scale(8)), path, split_tick=4 * TPQ, width_px=size[0], height_px=size[1])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == size


# --- render_all ------------------------------------------------------------------------


def test_render_all_writes_every_output_and_times_each_stage(tmp_path):
    out = {
        k: tmp_path / f"x.{ext}"
        for k, ext in [
            ("wav", "wav"),
            ("mp3", "mp3"),
            ("svg", "svg"),
            ("roll", "png"),
            ("musicxml", "musicxml"),
        ]
    }
    timings = render_all(piece(scale(8), tpq=96), split_tick=4 * 96, title="t", **out)
    assert set(timings) == {"audio", "score", "roll"}
    assert all(t > 0 for t in timings.values())
    for path in out.values():
        assert path.stat().st_size > 0
    wav, rate = soundfile.read(str(out["wav"]))
    assert rate == 44100 and abs(len(wav) / rate - 4.0) < 1.0


def test_render_all_runs_only_the_stages_asked_for(tmp_path):
    assert set(render_all(piece(scale(4)), roll=tmp_path / "r.png")) == {"roll"}
