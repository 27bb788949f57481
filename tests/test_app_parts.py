"""The app's parts without a server: the streaming renderer's order and Stop, what the player shows
of a piece, the piece built take by take, file names, tempo marks, the two engravings and the
playhead's data. Tiny pieces built in code; nothing is sampled."""

from __future__ import annotations

import json
import re
import threading
import time
from html import unescape
from pathlib import Path

import pytest
import symusic
from conftest import make_score

from musicgen import app_logic as logic
from musicgen import app_render
from musicgen.app_render import Variation, View, render, shown_part, write_variations
from musicgen.app_session import History, Piece, Result, bar_length
from musicgen.errors import MusicgenError
from musicgen.render.score import engrave, musicxml_text, tempo_marks
from musicgen.tokenizer import to_midi_bytes

TPQ = 480
BAR = 4 * TPQ


def bars_of_quarters(n_bars: int, first_pitch: int = 60, tempos=((0, 120.0),), key: int | None = None):
    """n_bars of 4/4, a quarter note on every beat, pitches rising by one each bar."""
    notes = [(b * 4 + q, 1, first_pitch + b % 12, 80) for b in range(n_bars) for q in range(4)]
    score = make_score(notes, tempos=tempos)
    if key is not None:
        score.key_signatures.append(symusic.KeySignature(0, key, 0))
    return score


def onsets(score: symusic.Score) -> list[int]:
    return sorted(n.time for t in score.tracks for n in t.notes)


# ---- the streaming renderer --------------------------------------------------------------------


def test_render_streams_every_roll_then_every_audio_then_every_sheet_then_the_critic(monkeypatch, tmp_path):
    done, lock = [], threading.Lock()

    def stage(self, name, soundfont=None):
        time.sleep(0.01 * int(self.title[1:]))  # variation 1 first in each stage, even on two threads
        with lock:
            done.append((name, self.title))

    monkeypatch.setattr(View, "stage", stage)
    monkeypatch.setattr(app_render, "_judge", lambda v: done.append(("style", v.title)))
    views = [View(bars_of_quarters(2), None, tmp_path / f"v{i}", f"v{i}") for i in range(3)]
    judged = [Variation(f"v{i}", tmp_path / f"v{i}.mid", None, 0, f"v{i}") for i in range(3)]
    updates = sum(1 for _ in render(views, judge=judged))
    assert updates == 12  # one update per finished piece of work
    assert [name for name, _ in done] == ["roll"] * 3 + ["audio"] * 3 + ["sheet"] * 3 + ["style"] * 3
    assert [title for name, title in done if name == "sheet"] == ["v0", "v1", "v2"]


def test_closing_the_stream_stops_the_work_not_yet_started(monkeypatch, tmp_path):
    started, release = [], threading.Event()

    def slow(self, name, soundfont=None):
        started.append(name)
        if len(started) > 1:  # the first piece is quick, the others wait until after Stop
            release.wait(5)

    monkeypatch.setattr(View, "stage", slow)
    stream = render([View(bars_of_quarters(2), None, tmp_path / f"v{i}", "t") for i in range(4)])
    next(stream)  # the first roll is done
    stream.close()  # the user pressed Stop
    release.set()
    time.sleep(0.3)
    assert started in (["roll"], ["roll", "roll"])  # the one running may finish; the rest never start
    assert not any(t.name.startswith("render-") for t in threading.enumerate())


def test_a_stage_that_fails_is_reported_and_the_others_still_run(monkeypatch, tmp_path):
    import musicgen.render

    def broken(*args, **kwargs):
        raise MusicgenError("FluidSynth is missing")

    monkeypatch.setattr(musicgen.render, "render_audio", broken)
    view = View(bars_of_quarters(2), None, tmp_path / "v", "t")
    list(render([view]))
    assert view.errors == {"audio": "FluidSynth is missing"} and view.mp3 is None
    assert view.roll.exists() and "<svg" in view.html() and view.done == {"roll", "audio", "sheet"}


# ---- what the player shows -------------------------------------------------------------------


def test_the_new_bars_are_shown_from_four_bars_before_them_in_the_seed_key_numbered_as_in_the_piece():
    score = bars_of_quarters(12, key=-3)
    part, split, end, first_bar = shown_part(score, 10 * BAR)
    assert (split, end, first_bar) == (4 * BAR, None, 7)  # bars 7-12 of the piece
    assert onsets(part)[0] == 0 and len(onsets(part)) == 6 * 4
    assert [(k.time, k.key) for k in part.key_signatures] == [(0, -3)]  # the key is kept at the cut


def test_rewritten_bars_are_shown_with_four_bars_on_each_side():
    score = bars_of_quarters(20)
    part, split, end, first_bar = shown_part(score, 8 * BAR, 10 * BAR)  # bars 9-10 rewritten
    assert (split, end, first_bar) == (4 * BAR, 6 * BAR, 5)
    assert len(onsets(part)) == (4 + 2 + 4) * 4  # bars 5-14


def test_a_short_seed_is_shown_whole_and_both_views_are_one(tmp_path):
    [v] = write_variations([bars_of_quarters(5)], 3 * BAR, tmp_path, "short-take1", "t")
    assert v.view() is v.view(whole=True) and v.view().first_bar == 1


def test_a_long_seed_has_a_view_of_the_new_bars_and_one_of_the_whole_piece(tmp_path):
    [v] = write_variations([bars_of_quarters(30)], 26 * BAR, tmp_path, "long-take1", "t")
    new, whole = v.view(), v.view(whole=True)
    assert new is not whole and whole.score is v.score and new.first_bar == 23
    assert new.stem.name == "long-take1-v1" and whole.stem.name == "long-take1-v1-whole"
    assert symusic.Score(str(v.midi)).note_num() == 30 * 4  # the MIDI holds the whole piece


def test_the_sheet_carries_what_the_playhead_needs(tmp_path):
    score = bars_of_quarters(3, tempos=((0, 60.0), (4, 120.0)))
    view = View(score, BAR, tmp_path / "v", "t", first_bar=5)
    list(render([view], stages=("sheet",)))
    html = view.html()
    data = json.loads(unescape(re.search(r"data-playhead='([^']*)'", html).group(1)))
    assert data["tempo"] == [[0.0, 0.0, 60.0], [4.0, 4.0, 120.0]]  # [seconds, quarters, qpm]
    assert data["bars"] == [[5, 0.0], [6, 4.0], [7, 8.0]]
    left, right, quarters = data["roll"]
    assert 0 < left < right < 1 and quarters == 12.0
    marks = json.loads(unescape(re.search(r"data-onsets='([^']*)'", html).group(1)))
    assert [q for q, _ in marks] == [float(q) for q in range(12)]
    for _, ids in marks:  # every id names a note drawn in both engravings
        assert all(html.count(f'id="{i}"') == 2 for i in ids.split())
    assert "class='sheet-wide'" in html and "class='sheet-narrow'" in html


def test_engrave_gives_a_phone_width_with_more_systems_and_the_same_note_ids():
    xml = musicxml_text(bars_of_quarters(16), "t")
    (wide, narrow), marks = engrave(xml, (1000, 360))
    ids = re.findall(r'id="([^"]+)" class="note"', wide)
    assert ids and ids == re.findall(r'id="([^"]+)" class="note"', narrow)
    assert narrow.count('class="system"') > wide.count('class="system"')
    assert "\n" not in wide  # no indentation to send


# ---- tempo marks and bar numbers in the score ----------------------------------------------------


def test_tempo_marks_where_the_tempo_changes_but_not_for_every_small_rubato():
    score = bars_of_quarters(6, tempos=((0, 100.0), (4, 101.0), (8, 120.0), (18, 80.0)))
    assert tempo_marks(score) == {0: [(0, 100)], 2: [(0, 120)], 4: [(8, 80)]}
    xml = musicxml_text(score, "t")
    assert re.findall(r"<per-minute>(\d+)</per-minute>", xml) == ["100", "120", "80"]


def test_rewritten_bars_are_labelled_and_bars_keep_the_piece_numbers():
    xml = musicxml_text(bars_of_quarters(6), "t", split_tick=2 * BAR, end_tick=4 * BAR, first_bar=9)
    assert re.findall(r'<measure[^>]* number="(\d+)"', xml)[:6] == ["9", "10", "11", "12", "13", "14"]
    assert "rewritten" in xml and "continuation" not in xml
    assert xml.count("light-light") == 2  # a double bar before and after the rewritten bars


# ---- names, seeds and the session -------------------------------------------------------------------


@pytest.mark.parametrize("seed, stem", [
    ("joplin-maple-leaf-rag.mid", "joplin-maple-leaf-rag"),
    ("joplin-maple-leaf-rag-take3-v2.mid", "joplin-maple-leaf-rag"),
    ("bach-piece4-take7-v1.mid", "bach"),
    ("my song (final).mid", "my-song-final"),
    (None, "scratch-chopin"),
])
def test_every_take_is_named_from_the_seed_without_earlier_take_numbers(seed, stem):
    assert logic.output_stem(seed, "chopin") == stem


def test_take_numbers_grow_through_the_session_and_undo_does_not_reuse_them():
    history = History()
    assert [history.next_take() for _ in range(3)] == [1, 2, 3]
    history.push(Result(None, [], "a", 1, 1, 4))
    history.push(Result(None, [], "b", 2, 2, 4))
    history.undo()
    assert history.next_take() == 4


@pytest.mark.parametrize("name", ["photo.png", "song.mp3", "notes.txt", "no-suffix"])
def test_a_file_not_named_midi_gets_one_sentence(name):
    with pytest.raises(MusicgenError, match=f"{re.escape(name)} is not a MIDI file"):
        logic.check_midi_name(name)
    assert f"{name} is not a MIDI file" in logic.describe_seed(name, 8)


def test_status_counts_each_stage_then_says_done(tmp_path):
    made = write_variations([bars_of_quarters(3), bars_of_quarters(3)], BAR, tmp_path, "s-take1", "t")
    result = Result(None, made, "2 variation(s)", 7, 1, 2)
    assert result.status().startswith("**Composed; drawing it now:** piano roll 0/2, audio 0/2, sheet music "
                                      "0/2, style verdict 0/2.")
    for v in made:
        v.view().done.update({"roll", "audio", "sheet"})
        v.judged = True
    assert result.status() == "**Done.** 2 variation(s)"


# ---- the piece, take by take --------------------------------------------------------------------


def result_of(score: symusic.Score, split: int, take: int, bars: int, seed_midi: str | None = None,
              fill_end: int | None = None) -> Result:
    made = write_variations([score], split, logic.new_request_dir(), f"p-take{take}", "t", fill_end)
    return Result(seed_midi, made, "", 1, take, bars)


def test_kept_takes_follow_each_other_on_bar_lines_and_can_be_removed():
    seed = logic.new_request_dir() / "seed.mid"
    seed.write_bytes(to_midi_bytes(bars_of_quarters(3)))
    piece = Piece()
    first = result_of(bars_of_quarters(5), 3 * BAR, 1, 2, str(seed))  # 3 seed bars, 2 new
    piece.keep(first, first.variations[0], 1)
    assert [(s.label, s.bars) for s in piece.segments] == [("seed: seed.mid", 3), ("take 1, variation 1", 2)]
    second = result_of(bars_of_quarters(9, first_pitch=40), 5 * BAR, 2, 4, str(piece.midi))
    piece.keep(second, second.variations[0], 1)
    whole = symusic.Score(str(piece.midi))
    assert whole.end() == 9 * BAR and whole.note_num() == 9 * 4  # 3 + 2 + 4 bars
    assert piece.midi.name == "seed-piece2.mid" and piece.view.split == 5 * BAR  # the last take marked
    assert piece.summary() == "3 parts, 9 bars"
    piece.remove(1)  # the first take out
    assert [s.bars for s in piece.segments] == [3, 4] and symusic.Score(str(piece.midi)).end() == 7 * BAR
    assert piece.midi.name == "seed-piece3.mid"


def test_a_kept_rewrite_becomes_the_whole_piece():
    piece = Piece()
    rewrite = result_of(bars_of_quarters(8), 2 * BAR, 1, 2, fill_end=4 * BAR)
    piece.keep(rewrite, rewrite.variations[0], 1)
    assert len(piece.segments) == 1 and piece.segments[0].bars == 8 and "rewritten" in piece.segments[0].label


def test_a_take_is_its_asked_bars_long_even_when_its_last_bar_is_silent():
    score = bars_of_quarters(2)
    assert bar_length(score, 3) == (3 * BAR, 3)
    assert bar_length(score) == (2 * BAR, 2)


def test_view_files_are_named_after_the_view(tmp_path):
    view = View(bars_of_quarters(2), None, tmp_path / "x-take1-v1", "t")
    list(render([view], stages=("roll", "sheet")))
    assert [Path(f).name for f in view.files()] == ["x-take1-v1.musicxml"]
    assert view.roll.name == "x-take1-v1-roll.png"


def test_a_piece_past_its_size_limits_is_refused_with_a_sentence(monkeypatch):
    import musicgen.app_session as session

    monkeypatch.setattr(session, "MAX_PIECE_BARS", 6)
    piece = Piece()
    take = result_of(bars_of_quarters(9), 5 * BAR, 1, 4)  # a take of 4 bars
    piece.keep(take, take.variations[0], 1)
    with pytest.raises(MusicgenError, match="would pass 6 bars"):
        piece.keep(take, take.variations[0], 1)
    monkeypatch.setattr(session, "MAX_PIECE_NOTES", 10)
    with pytest.raises(MusicgenError, match="would pass 10 notes"):
        Piece().keep(take, take.variations[0], 1)
