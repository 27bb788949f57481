"""Infill keeps everything outside the gap, keeps the meter and bar count, and picks the take under
which the bars after the gap are likeliest; --end keeps the take that ends best; the ending
model's parts do what they say on hand-built bars."""

import numpy as np
import pytest
import symusic
import torch
from conftest import make_score, tiny_piece, write_score
from miditok import TokSequence

from musicgen import ending
from musicgen import tokenizer as tk
from musicgen.cli import main as cli_main
from musicgen.errors import MusicgenError
from musicgen.infill import infill, left_tokens, parse_bars, right_loglik, right_tokens
from musicgen.sample import Generator, SampleConfig


@pytest.fixture(scope="module")
def gen(tiny_run):
    return Generator(tiny_run / "best", device="cpu")


def notes_of(score: symusic.Score) -> list[tuple]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


@pytest.mark.parametrize("text, bars", [("9-12", (9, 13)), ("9", (9, 10)), (" 3 - 3 ", (3, 4)),
                                        ("1–2", (1, 3))])
def test_parse_bars_reads_a_range_as_a_score_numbers_bars(text, bars):
    assert parse_bars(text) == bars


@pytest.mark.parametrize("text", ["12-9", "0-3", "a-b", "", "1-2-3", "1-40"])
def test_parse_bars_refuses_anything_else_with_a_sentence(text):
    with pytest.raises(MusicgenError, match="bars|at most"):
        parse_bars(text)


def test_infill_rewrites_only_the_gap_and_keeps_bars_meter_and_tracks(gen, tmp_path):
    piece = tiny_piece(bars=8)
    path = write_score(piece, tmp_path / "piece.mid")
    result = infill(gen, path, 3, 5, SampleConfig(variations=2, candidates=3, seed=1))
    original = tk.read_midi(path)
    starts = tk.bar_starts(original)
    a, b = int(starts[2]), int(starts[4])
    assert (result.split_tick, result.fill_end_tick) == (a, b)
    outside = [n for n in notes_of(original) if not a <= n[0] < b]
    for out in result.scores:
        assert len(out.tracks) == 2 and len(tk.bar_starts(out)) == len(starts)
        assert [n for n in notes_of(out) if not a <= n[0] < b] == outside
        assert [(t.time, t.numerator, t.denominator) for t in out.time_signatures] == [(0, 4, 4)]
        assert any(a <= n[0] < b for n in notes_of(out))
        symusic.Score.from_midi(tk.to_midi_bytes(out))  # decodes as MIDI
    for ids in result.tokens:
        body = [i for i in ids if i not in set(gen.tokenizer.special_tokens_ids)]
        assert gen.tokenizer.tokens_errors(TokSequence(ids=body)) == 0
    again = infill(gen, path, 3, 5, SampleConfig(variations=2, candidates=3, seed=1))
    assert again.midi_bytes() == result.midi_bytes()


def test_infill_keeps_a_nine_eight_meter(gen, tmp_path):
    notes = [(bar * 4.5 + i * 0.5, 0.5, 60 + i % 5, 80) for bar in range(8) for i in range(9)]
    path = write_score(make_score(notes, time_sig=(9, 8)), tmp_path / "nine.mid")
    out = infill(gen, path, 4, 6, SampleConfig(seed=2)).scores[0]
    assert [(t.numerator, t.denominator) for t in out.time_signatures] == [(9, 8)]
    starts = tk.bar_starts(out)
    assert len(starts) == 8 and np.all(np.diff(starts) == 9 * 480 // 2)
    new = [n for n in notes_of(out) if starts[3] <= n[0] < starts[5]]
    assert new and max(n[0] for n in new) < starts[5]


def test_the_kept_take_is_the_one_under_which_the_right_side_is_likeliest(gen, tmp_path):
    piece = tk.prepare(tiny_piece(bars=8))
    starts = tk.bar_starts(piece)
    cfg = SampleConfig(seed=4, candidates=6, style="alpha")
    left, _ = left_tokens(gen, piece, starts, 3)
    right = right_tokens(gen, piece, starts, 5)
    prime = [gen.tokenizer.vocab[tk.style_token("alpha")]] + left
    fill = SampleConfig(**{**cfg.__dict__, "bars": 2})
    meter = gen.tokenizer.vocab["TimeSig_4/4"]
    run = gen.sample_after(prime, fill, 6, meter=meter, keep_state=True)
    fit = right_loglik(gen, run, right)
    # the kept state and bar-line probability agree with one pass over left + middle + right
    for i in (0, 5):
        seq = torch.tensor([prime + run.new[i] + right])
        with torch.no_grad():
            logits, _, _ = gen.model(seq[:, :-1])
        logp = torch.log_softmax(logits.double(), -1)[0, torch.arange(seq.shape[1] - 1), seq[0, 1:]]
        assert fit[i] == pytest.approx(float(logp[-len(right):].sum()), abs=1e-3)
    best = int(np.argmax(fit))
    result = infill(gen, piece, 3, 5, cfg)
    assert result.tokens[0] == left + run.new[best]


def test_infill_refuses_ranges_it_cannot_fill(gen, tmp_path):
    path = write_score(tiny_piece(bars=4), tmp_path / "four.mid")
    with pytest.raises(MusicgenError, match="has 4 bars"):
        infill(gen, path, 3, 7)
    changing = tiny_piece(bars=6)
    changing.time_signatures.append(symusic.TimeSignature(2 * 4 * 480 + 4 * 480, 3, 4))
    with pytest.raises(MusicgenError, match="meter changes inside bars 2-4"):
        infill(gen, changing, 2, 5)
    with pytest.raises(MusicgenError, match="no playable"):
        infill(gen, make_score([]), 1, 2)
    with pytest.raises(MusicgenError, match="variations x candidates"):
        infill(gen, path, 2, 3, SampleConfig(variations=64, candidates=16))


def test_infill_at_the_start_and_to_the_end_of_a_piece(gen, tmp_path):
    path = write_score(tiny_piece(bars=6), tmp_path / "six.mid")
    first = infill(gen, path, 1, 3, SampleConfig(seed=3))
    assert first.split_tick == 0 and first.fill_end_tick == 2 * 4 * 480
    last = infill(gen, path, 5, 7, SampleConfig(seed=3))  # nothing after the gap: a continuation
    assert last.fill_end_tick == 6 * 4 * 480 and len(tk.bar_starts(last.scores[0])) == 6


def test_cli_infill_writes_one_file_per_variation(tmp_path, tiny_run, capsys):
    path = write_score(tiny_piece(bars=8), tmp_path / "piece.mid")
    out = tmp_path / "filled.mid"
    assert cli_main(["infill", str(path), "--bars", "3-4", "--variations", "2", "--candidates", "2",
                     "--out", str(out), "--checkpoint", str(tiny_run / "best"), "--seed", "1"]) == 0
    assert out.is_file() and (tmp_path / "filled-2.mid").is_file()
    assert cli_main(["infill", str(path), "--bars", "4-3", "--checkpoint", str(tiny_run / "best")]) == 2
    assert "bars must be a range" in capsys.readouterr().err


def bar_of(pitches, dur=4.0, bar=0, velocity=70):
    return [(bar * 4, dur, p, velocity) for p in pitches]


def cadence(last_chord, bass_first=True) -> symusic.Score:
    """Sixteen bars of C major scale and chords, then one final bar holding `last_chord`."""
    notes = []
    for bar in range(16):
        notes += [(bar * 4 + i * 0.5, 0.5, 60 + s, 70) for i, s in enumerate((0, 2, 4, 5, 7, 9, 11, 12))]
        notes += bar_of((48, 52, 55), bar=bar)
    notes += bar_of(last_chord, bar=16)
    return make_score(notes)


@pytest.mark.parametrize("chord, holds", [((48, 60, 64, 67), True), ((36, 48), True),
                                          ((43, 59, 62, 65), False), ((52, 60, 67), False),
                                          ((48, 60, 64, 69), False)])
def test_holds_tonic_chord_needs_the_tonic_triad_over_the_tonic(chord, holds):
    assert ending.holds_tonic_chord(cadence(chord)) is holds


def test_ending_features_read_the_last_sonority_relative_to_the_key():
    x = dict(zip(ending.FEATURES, ending.bar_features(cadence((48, 60, 64, 67)))))
    assert [x[f"last_pc_{i}"] for i in (0, 4, 7, 2)] == [1, 1, 1, 0] and x["bass_pc_0"] == 1
    assert x["held_share"] == 1.0 and x["minor"] == 0 and x["bias"] == 1
    up = cadence((50, 62, 66, 69))  # the same bar a tone up, over C major bars: bass on degree 2
    assert dict(zip(ending.FEATURES, ending.bar_features(up)))["bass_pc_2"] == 1
    assert ending.bar_features(make_score([])) is None


def test_logistic_fit_and_auc_on_a_separable_toy():
    x = np.array([[0.0, 1], [0.2, 1], [0.9, 1], [1.0, 1]])
    y = np.array([0, 0, 1, 1.0])
    w = ending.fit_logistic(x, y, l2=0.01)
    assert w[0] > 5 and ending.auc(x @ w, y) == 1.0
    assert ending.auc(np.array([1.0, 1.0]), np.array([1, 0])) == 0.5


def test_shipped_ending_model_scores_a_final_tonic_above_a_dominant():
    model = ending.load_ending()
    assert model.info["val_auc"] > 0.9
    assert model.score(cadence((48, 60, 64, 67))) > model.score(cadence((43, 59, 62, 65)))


def test_end_adds_the_last_bar_the_ending_model_likes_best(gen, tmp_path):
    seed = write_score(tiny_piece(bars=4), tmp_path / "seed.mid")
    ended = gen.generate(seed, SampleConfig(bars=3, seed=7, end=True, candidates=5, variations=2))
    seed_ids, _ = gen.seed_tokens(seed)
    prime = [gen.tokenizer.vocab[tk.style_token("any")]] + seed_ids
    body = gen.sample_after(prime, SampleConfig(bars=2, seed=7), 2).new  # as without --end, 1 bar less
    model, last = ending.load_ending(), 4 + 3 - 1
    for v in range(2):
        takes = gen.sample_after(prime + body[v], SampleConfig(bars=1, seed=7 + 1 + v), 5).new
        fit = [model.score(tk.decode(gen.tokenizer, seed_ids + body[v] + t), last) for t in takes]
        best = takes[max(range(5), key=lambda i: (fit[i], -i))]
        assert ended.tokens[v] == seed_ids + body[v] + best
        held = ending.hold_last_chord(tk.decode(gen.tokenizer, ended.tokens[v]), last)
        assert notes_of(ended.scores[v]) == notes_of(held)
        assert len(tk.bar_starts(ended.scores[v], ended.scores[v].end() + 1)) >= last + 1
    one = gen.generate(seed, SampleConfig(bars=1, seed=7, end=True, candidates=3))
    assert sum(t == gen.grammar.bar_id for t in one.tokens[0]) == 5
    with pytest.raises(MusicgenError, match="with --end"):
        SampleConfig(end=True, variations=20, candidates=16)
