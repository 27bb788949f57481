"""The web app through its API: `python app.py` launched on a free port, driven by gradio_client."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import symusic
import test_hostile as hostile
from conftest import make_score, write_score
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from musicgen.tokenizer import MAX_MIDI_BYTES, to_midi_bytes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = sorted((ROOT / "assets" / "examples").glob("*.mid"))[0]
QUICK = {"bars": 2, "variations": 1, "api_name": "/generate"}  # small, so each request takes seconds
SCRATCH = {**QUICK, "bars": 4, "random_seed": False}  # 2 bars from nothing can come out silent
N_SLOTS = 4  # variation slots in the app; each has (audio, roll, sheet, downloads, style line)
PER_SLOT = 5


@contextmanager
def launched_app(timeout_s: float = 120, **env_vars: str):
    """Run `python app.py` on a free localhost port (with env_vars set); yield its URL and process
    id; stop it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", **env_vars}
    # the log goes to a file, never a pipe nobody reads: Gradio prints a traceback for every
    # refused request, and a full 64 KB pipe would block the server after some 30 of them
    log = tempfile.NamedTemporaryFile("w+", prefix="app-", suffix=".log")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited early:\n{log.read()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app.py did not answer on {url} within {timeout_s} s")
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def client():
    with launched_app() as (url, _):
        yield Client(url, verbose=False)


def midi_downloads(result) -> list[Path]:
    """The MIDI files among the variation download lists of a /generate result."""
    seed_used, status = result[:2]
    assert isinstance(seed_used, (int, float)) and status.startswith("**Done.**")
    slots = result[2:]
    assert len(slots) == PER_SLOT * N_SLOTS
    files = [f for i in range(N_SLOTS) for f in (slots[PER_SLOT * i + 3] or [])]
    return [Path(f) for f in files if str(f).endswith(".mid")]


def assert_good(result, variations: int = 1) -> symusic.Score:
    """Every variation asked for came back with audio, roll, sheet, a style line and a MIDI with notes."""
    slots = result[2:]
    for i in range(N_SLOTS):
        audio, roll, sheet, files, style = slots[PER_SLOT * i: PER_SLOT * (i + 1)]
        if i < variations:
            assert Path(audio).suffix == ".mp3" and Path(audio).stat().st_size > 1000
            assert Path(roll).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert "<svg" in sheet
            assert sorted(Path(f).suffix for f in files) == [".mid", ".musicxml"]  # WAV: on request
            assert re.fullmatch(r"Sounds like: \w+ \d+%, \w+ \d+%", style), style
        else:
            assert audio is None and roll is None and not sheet and not files and not style
    mids = midi_downloads(result)
    assert len(mids) == variations
    score = symusic.Score(str(mids[0]))
    assert score.note_num() > 0
    return score


def test_continues_an_uploaded_example_seed(client):
    result = client.predict(handle_file(EXAMPLE), random_seed=False, seed=7, **QUICK)
    score = assert_good(result)
    seed = symusic.Score(str(EXAMPLE))
    assert score.end() / score.tpq > seed.end() / seed.tpq  # the seed plus new bars
    assert "random seed 7" in result[1] and result[0] == 7


def test_composes_from_scratch_in_a_style_with_several_variations(client):
    result = client.predict(None, style="bach", **{**SCRATCH, "variations": 2})
    assert_good(result, variations=2)
    assert "from scratch" in result[1] and "bach" in result[1]


def test_random_seed_is_reported_and_reproduces_the_same_midi(client):
    first = client.predict(handle_file(EXAMPLE), **QUICK)  # random seed on by default
    used = int(first[0])
    again = client.predict(handle_file(EXAMPLE), random_seed=False, seed=used, **QUICK)
    assert midi_downloads(first)[0].read_bytes() == midi_downloads(again)[0].read_bytes()


def drums_only() -> bytes:
    return to_midi_bytes(make_score([(i * 0.5, 0.25, 36 + i % 3, 100) for i in range(16)], drum=True))


BAD_SEEDS = {  # id -> (file name, its bytes, words the error must contain)
    "text-renamed-mid": ("notes.mid", lambda: b"just some text\n", "not a MIDI file"),
    "truncated-midi": ("cut.mid", lambda: EXAMPLE.read_bytes()[:200], "damaged or cut short"),
    "empty-file": ("empty.mid", lambda: b"", "not a MIDI file"),
    "drums-only": ("drums.mid", drums_only, "no playable piano notes"),
    "over-the-cap": ("huge.mid", lambda: b"MThd" + bytes(MAX_MIDI_BYTES + 500_000), "larger than 4 MB"),
    "division-0": ("div0.mid", lambda: hostile.midi(division=0), "time division is 0 ticks"),
    "false-chunk-length": ("len.mid", lambda: hostile.midi()[:14] + b"MTrk\x00\x0f\x42\x40\x00\x90",
                           "damaged or cut short"),
    "five-byte-delta": ("delta.mid", lambda: hostile.midi(b"\xff\xff\xff\xff\xff\x90\x3c\x40"),
                        "damaged or cut short"),
    "wrong-extension": ("seed.txt", EXAMPLE.read_bytes, "seed.txt is not a MIDI file"),
    "a-photo": ("photo.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(64), "photo.png is not a MIDI file"),
}


@pytest.mark.parametrize("case", list(BAD_SEEDS))
def test_bad_seed_gets_a_clear_error_and_the_app_keeps_serving(client, tmp_path, case):
    name, make, words = BAD_SEEDS[case]
    (tmp_path / name).write_bytes(make())
    with pytest.raises(AppError, match=f"(?i){words}"):
        client.predict(handle_file(tmp_path / name), **QUICK)
    assert_good(client.predict(handle_file(EXAMPLE), **QUICK))


@pytest.mark.parametrize("settings, words", [
    ({"tempo": 5000}, r"Tempo override \(BPM\) \(tempo\) must be a number from 20 to 400 \(or 0\), not 5000"),
    ({"style": "nobody"}, "Value: nobody is not in the list of choices"),
    ({"bars": 100000}, r"New bars \(bars\) must be a whole number from 1 to 64, not 100000"),
    ({"soundfont": "nope"}, "not in the list of choices"),
], ids=["absurd-tempo", "unknown-style", "absurd-bars", "unknown-soundfont"])
def test_bad_settings_get_a_clear_error_and_the_app_keeps_serving(client, settings, words):
    with pytest.raises(AppError, match=f"(?i){words}"):
        client.predict(handle_file(EXAMPLE), **{**QUICK, **settings})
    assert_good(client.predict(None, **SCRATCH))


METER_OVER_0 = b"\x00\xff\x58\x04\x04\xff\x18\x08"  # a time signature of 4/2^255: denominator 0


@pytest.mark.parametrize("make", [lambda: hostile.midi(header_extra=bytes(4)),  # MThd of length 10
                                  lambda: hostile.midi(METER_OVER_0 + hostile.note_after(0))],
                         ids=["long-header", "meter-over-0"])
def test_files_the_spec_allows_or_that_can_be_repaired_compose(client, tmp_path, make):
    (tmp_path / "odd.mid").write_bytes(make())
    assert_good(client.predict(handle_file(tmp_path / "odd.mid"), **QUICK))


def test_seed_with_an_absurd_tempo_is_clamped_and_composes(client, tmp_path):
    seed = make_score([(i, 1, 60 + i % 12, 80) for i in range(8)], tempos=((0, 100000.0),))
    result = client.predict(handle_file(write_score(seed, tmp_path / "fast.mid")), **QUICK)
    assert_good(result)


def test_upload_far_over_the_cap_is_refused(client, tmp_path):
    path = tmp_path / "giant.mid"
    path.write_bytes(b"MThd" + bytes(2 * MAX_MIDI_BYTES + 10))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(path), **QUICK)
    assert_good(client.predict(handle_file(EXAMPLE), **QUICK))


def test_eight_users_at_once_all_get_results(client):
    users = [Client(client.src, verbose=False) for _ in range(8)]  # 2 composing, 6 in the queue
    jobs = [u.submit(handle_file(EXAMPLE), seed=i, **{**QUICK, "random_seed": False}) if i % 2
            else u.submit(None, seed=i, **SCRATCH) for i, u in enumerate(users)]
    results = [job.result(timeout=240) for job in jobs]
    for i, result in enumerate(results):
        assert_good(result)
        assert result[0] == i


def test_a_second_request_from_a_busy_session_is_turned_away_and_the_first_completes(client):
    first = client.submit(handle_file(EXAMPLE), **{**QUICK, "bars": 16, "variations": 2})
    while first.status().code.name in ("STARTING", "JOINING_QUEUE", "QUEUE_FULL", "IN_QUEUE", "SENDING_DATA"):
        time.sleep(0.05)  # until it is being processed
    with pytest.raises(AppError, match="previous request is still being composed"):
        client.predict(handle_file(EXAMPLE), **QUICK)
    assert_good(first.result(timeout=120), variations=2)


def test_classify_returns_probabilities_over_the_classes_for_an_example_midi(client):
    label, verdict = client.predict(handle_file(EXAMPLE), api_name="/classify")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    classes = json.loads((ROOT / "assets" / "classifier" / "config.json").read_text())["classes"]
    assert sorted(confidences) == sorted(classes)
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-3)
    assert label["label"] == max(confidences, key=confidences.get)
    assert EXAMPLE.name in verdict and f"sounds like: {label['label']} " in verdict


def test_classify_junk_gets_the_library_error_and_the_app_keeps_serving(client, tmp_path):
    junk = tmp_path / "notes.wav"
    junk.write_text("just some text, not a recording\n")
    with pytest.raises(AppError, match="(?i)could not be decoded as wav"):
        client.predict(handle_file(junk), api_name="/classify")
    label, _ = client.predict(handle_file(EXAMPLE), api_name="/classify")
    assert len(label["confidences"]) > 1


def test_length_estimate_is_a_range_when_the_model_picks_the_tempo():
    from musicgen.app_logic import describe_seed

    assert "≈ **23–48 s** of new music (16 bars)" in describe_seed(None, 16)  # 1.46 and 3.03 s a bar
    assert "≈ **32 s** of new music (16 bars)" in describe_seed(None, 16, tempo=120)
    assert "≈ **36 s** of new music (16 bars)" in describe_seed(None, 16, tempo=120, meter="9/8")
    seed = sorted((Path(__file__).parent.parent / "assets" / "examples").glob("*.mid"))[0]
    assert "–" not in describe_seed(seed, 8).split("≈")[1]  # the seed's tempo: one figure


# ---- hostile use through the API (issue 18) ---------------------------------------------------

API_ORDER = ["seed_midi", "style", "seed_bars", "bars", "variations", "temperature", "top_k", "top_p",
             "greedy_mix", "repetition_penalty", "random_seed", "seed", "tempo", "soundfont", "vary_tempo",
             "whole_piece", "end", "key", "meter"]
NUMERIC = {"seed_bars": "Seed bars to use", "bars": "New bars", "variations": "Variations",
           "temperature": "Temperature", "top_k": "Top-k", "top_p": "Top-p", "greedy_mix": "Greedy mix",
           "repetition_penalty": "Repetition penalty", "seed": "Seed", "tempo": r"Tempo override \(BPM\)"}


def raw_generate(url: str, **settings) -> tuple[str, dict]:
    """(last SSE event, its data) of /generate called over plain HTTP: JSON may carry NaN and
    Infinity there, which gradio_client refuses to send."""
    defaults = {"seed_midi": None, "style": "any", "seed_bars": 0, "bars": 2, "variations": 1,
                "temperature": 0.9, "top_k": 0, "top_p": 0.9, "greedy_mix": 0.0, "repetition_penalty": 1.0,
                "random_seed": False, "seed": 0, "tempo": 0, "soundfont": "fluidr3-grand-piano",
                "vary_tempo": False, "whole_piece": False, "end": False, "key": "", "meter": ""}
    data = [{**defaults, **settings}[k] for k in API_ORDER]
    r = httpx.post(f"{url}gradio_api/call/generate", content=json.dumps({"data": data}),
                   headers={"content-type": "application/json"}, timeout=30)
    r.raise_for_status()
    lines = httpx.get(f"{url}gradio_api/call/generate/{r.json()['event_id']}", timeout=120).text.split("\n")
    event = [x for x in lines if x.startswith("event:")][-1].split(": ", 1)[1]
    return event, json.loads([x for x in lines if x.startswith("data:")][-1].split(": ", 1)[1])


@pytest.mark.parametrize("field", list(NUMERIC))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, "8"],
                         ids=["nan", "inf", "none", "string"])
def test_every_numeric_field_refuses_nan_inf_none_and_strings_with_its_name_and_range(client, field, value):
    event, data = raw_generate(client.src, **{field: value})
    assert event == "error"
    assert re.fullmatch(rf"{NUMERIC[field]} \({field}\) must be a (whole )?number from [\d.]+ to [\d.]+"
                        r"( \(or 0\))?, not .+", data["error"]), data["error"]


def test_a_seed_path_that_was_never_uploaded_is_told_so(client):
    outside = {"path": str(EXAMPLE.resolve().parent.parent / "model" / "config.json"),
               "meta": {"_type": "gradio.FileData"}}
    event, data = raw_generate(client.src, seed_midi={**outside, "path": "/etc/hostname.mid"})
    assert event == "error" and "was not uploaded by a user" in data["error"]
    assert raw_generate(client.src)[0] == "complete"  # and the app serves the next request


def test_one_note_after_hours_of_rest_is_continued_from_a_few_bars(client, tmp_path):
    seed = make_score([(46 * 3600 * 2 // 10, 1, 60, 80)])  # 4.6 hours of rest, then one note
    result = client.predict(handle_file(write_score(seed, tmp_path / "rest.mid")), **{**QUICK, "bars": 8})
    score = assert_good(result)
    assert "8276 silent bars of the seed were left out" in result[1]
    assert score.end() / score.tpq < 4 * (6 + 8 + 1)  # five seed bars and the new ones, not 8,000


def test_a_wav_is_written_only_when_asked_for(client):
    result = client.predict(handle_file(EXAMPLE), **QUICK)
    files = result[2 + 3]
    assert not any(str(f).endswith(".wav") for f in files)
    # the page's "Make a WAV" button is a private event; the library call behind it is what it runs
    from musicgen.app_render import View, make_wav

    shown = symusic.Score(str(next(f for f in files if str(f).endswith(".mid"))))
    view = View(shown, None, Path(files[0]).parent / "wav-test", "t")
    wav = make_wav(view, None)
    assert wav.read_bytes()[:4] == b"RIFF" and view.files()[-1] == str(wav)


def test_analyze_one_three_hour_note_answers_and_the_app_keeps_serving(client, tmp_path):
    note = make_score([(0, 3 * 3600 * 2, 60, 80)])  # held for three hours at 120 BPM
    path = write_score(note, tmp_path / "long.mid")
    label, verdict = client.predict(handle_file(path), api_name="/classify")
    assert len(label["confidences"]) > 1 and "sounds like" in verdict
    assert_good(client.predict(handle_file(EXAMPLE), **QUICK))


def test_the_style_list_shows_full_names_and_the_api_takes_folder_names(client):
    from musicgen.app_logic import style_choices

    shown = dict(style_choices(["any", "beeth", "pop", "new_folder"]))
    assert shown == {"Any style": "any", "Ludwig van Beethoven": "beeth", "Pop (POP909)": "pop",
                     "New Folder": "new_folder"}
    assert "beeth" in client.predict(None, style="beeth", **SCRATCH)[1]


# ---- streaming, views, names, ending and infill (issues 19 and 20) ---------------------------------

SATIE = ROOT / "assets" / "examples" / "satie-gymnopedie-1.mid"  # 16 bars of 3/4


def test_generate_streams_the_midi_first_then_each_variation_as_it_is_drawn(client):
    job = client.submit(handle_file(EXAMPLE), **{**QUICK, "bars": 4, "variations": 2})
    final = job.result(timeout=120)
    updates = job.outputs()
    first = updates[0]
    assert first[1].startswith("**Composed; drawing it now:**") and "tok/s" in first[1]
    assert len(midi_downloads_of(first)) == 2  # the MIDI of both variations at once
    assert first[2] is None and first[2 + PER_SLOT] is None  # no audio yet
    assert len(updates) >= 6  # rolls, audio, sheets and verdicts arrive one by one
    assert_good(final, variations=2)
    assert final == updates[-1] and final[1].startswith("**Done.**")


def midi_downloads_of(result) -> list[str]:
    slots = result[2:2 + PER_SLOT * N_SLOTS]
    files = [str(f) for i in range(N_SLOTS) for f in (slots[PER_SLOT * i + 3] or [])]
    return [f for f in files if f.endswith(".mid")]


def musicxml_measures(result) -> list[int]:
    """The bar numbers of the first variation's score (numbered as in the whole piece)."""
    xml = next(Path(f) for f in result[2 + 3] if str(f).endswith(".musicxml")).read_text()
    return [int(n) for n in re.findall(r'<measure[^>]* number="(\d+)"', xml)]


def api_parameters(client, endpoint: str) -> list[str]:
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint]
    return [p["parameter_name"] for p in info["parameters"]]


def test_the_new_bars_are_shown_from_four_seed_bars_before_and_the_whole_piece_on_request(client):
    settings = {**QUICK, "bars": 2, "random_seed": False, "seed": 3}
    new = client.predict(handle_file(SATIE), **settings)
    whole = client.predict(handle_file(SATIE), whole_piece=True, **settings)
    assert_good(new) and assert_good(whole)
    assert musicxml_measures(new)[0] == 13  # bars 13-16 of the seed, then the new ones
    assert musicxml_measures(whole)[0] == 1 and musicxml_measures(whole)[-1] == musicxml_measures(new)[-1]
    assert Path(midi_downloads(new)[0]).read_bytes() == Path(midi_downloads(whole)[0]).read_bytes()


def test_every_result_of_a_session_has_its_own_file_names(client):
    names = [Path(midi_downloads(client.predict(handle_file(EXAMPLE), **QUICK))[0]).name for _ in range(2)]
    assert names[0] != names[1]
    assert all(re.fullmatch(r"bach-chorale-bwv66-take\d+-v1\.mid", n) for n in names), names


def test_end_the_piece_closes_the_piece_and_key_and_meter_come_after_it(client):
    assert api_parameters(client, "/generate")[-4:] == ["whole_piece", "end", "key", "meter"]
    result = client.predict(handle_file(EXAMPLE), end=True, **QUICK)
    assert_good(result)
    assert "ended: the last bar is the best closing" in result[1]


def test_from_scratch_the_api_takes_a_key_and_a_meter(client):
    score = assert_good(client.predict(None, key="A major", meter="9/8", **SCRATCH))
    assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(9, 8)]
    assert [(k.key, k.tonality) for k in score.key_signatures] == [(3, 0)]


@pytest.mark.parametrize("knob", [{"key": "H major"}, {"meter": "11/16"}])
def test_a_key_or_meter_off_the_lists_gets_a_sentence_and_the_app_keeps_serving(client, knob):
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(None, **knob, **SCRATCH)
    assert_good(client.predict(None, **SCRATCH))


def notes_outside(score: symusic.Score, lo: int, hi: int) -> list[tuple[int, int, int]]:
    return sorted((n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes
                  if not lo <= n.time < hi)


def test_infill_rewrites_the_chosen_bars_and_keeps_every_other_bar(client):
    result = client.predict(handle_file(SATIE), bars="5-8", variations=2, random_seed=False, seed=4,
                            api_name="/infill")
    assert_good(result, variations=2)
    assert result[1].startswith("**Done.** bars 5–8 of satie-gymnopedie-1.mid rewritten")
    original = symusic.Score(str(SATIE))
    bar = original.tpq * 3  # 3/4
    for midi in midi_downloads(result):
        out = symusic.Score(str(midi))
        assert notes_outside(out, 4 * bar, 8 * bar) == notes_outside(original, 4 * bar, 8 * bar)
        assert notes_outside(out, 0, 4 * bar) != notes_outside(original, 0, 4 * bar)  # bars 5-8 are new
        assert out.end() <= 16 * bar + original.tpq * 4  # as many bars as before
    bars = musicxml_measures(result)
    assert bars[0] == 1 and 12 <= bars[-1] <= 13  # the 4 new bars and 4 on each side
    assert api_parameters(client, "/infill")[:2] == ["piece_midi", "bars"]


@pytest.mark.parametrize("bars, words", [
    ("nine", "bars must be a range like 9-12"),
    ("12-9", "bars must be a range like 9-12"),
    ("15-20", "the piece has 16 bars: choose bars between 1 and 16"),
], ids=["words", "backwards", "past-the-end"])
def test_infill_bad_bars_get_a_sentence_and_the_app_keeps_serving(client, bars, words):
    with pytest.raises(AppError, match=f"(?i){words}"):
        client.predict(handle_file(SATIE), bars=bars, api_name="/infill")
    assert_good(client.predict(handle_file(SATIE), bars="2", variations=1, api_name="/infill"))


def test_infill_of_a_file_that_is_not_midi_or_with_nan_settings_gets_a_sentence(client, tmp_path):
    (tmp_path / "notes.mid").write_text("just some text\n")
    with pytest.raises(AppError, match="(?i)not a MIDI file"):
        client.predict(handle_file(tmp_path / "notes.mid"), bars="1-2", api_name="/infill")
    # piece, bars, style, seed_bars, variations, temperature (NaN), top_k, top_p, greedy_mix,
    # repetition_penalty, random_seed, seed, soundfont, whole_piece: over plain HTTP, as NaN needs
    data = [None, "1-2", "any", 0, 1, float("nan"), 0, 0.9, 0.0, 1.0, False, 0, "fluidr3-grand-piano", False]
    r = httpx.post(f"{client.src}gradio_api/call/infill", timeout=30,
                   content=json.dumps({"data": data}), headers={"content-type": "application/json"})
    reply = httpx.get(f"{client.src}gradio_api/call/infill/{r.json()['event_id']}", timeout=60).text
    assert "event: error" in reply
    assert "Temperature (temperature) must be a number from 0 to 2, not nan" in reply
