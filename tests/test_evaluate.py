"""Baselines, music statistics, the evaluate report and the paper's note-ID encoding, on hand-made data."""

import argparse
import json
import math

import numpy as np
import pytest
from conftest import make_score

from musicgen import baselines, coherence, metrics
from musicgen.errors import MusicgenError
from musicgen.evaluate import EvalConfig, data_root, evaluate, format_report, main, position_nll
from musicgen.paper import note_ids, pitch_name

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def melody(pitches, step=0.5):
    """One note per `step` quarters, each as long as the step."""
    return make_score([(i * step, step, p, 80) for i, p in enumerate(pitches)])


# --- baselines --------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [2, 3, 5])
def test_kneser_ney_probabilities_sum_to_one_over_the_vocabulary(order):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 12, size=200) for _ in range(4)]
    lm = baselines.KneserNey(vocab_size=15, order=order).fit(seqs)
    for context in ([], [3], [3, 4, 5, 6], [14, 14, 14, 14], list(seqs[0][:7])):
        p = lm.probs(np.array(context, dtype=np.int64))
        assert p.shape == (15,) and (p > 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_kneser_ney_learns_a_repeated_pattern_and_reads_the_style_token_as_context():
    pattern = [1, 2, 3, 4] * 30
    lm = baselines.KneserNey(vocab_size=8, order=3).fit([np.array([7] + pattern)])
    nll, top1, top5 = baselines.score(lm, [np.array([7] + pattern[:20])])
    assert len(nll) == 20  # every token after the style token, the first one included
    assert top1.all() and top5.all()
    assert nll.mean() < 0.2


def test_unigram_nll_equals_the_hand_computed_value():
    # training tokens after the style token (3): 1, 1, 2 -> add-1 over V=4: (c + 1) / (3 + 4)
    lm = baselines.Unigram(vocab_size=4).fit([np.array([3, 1, 1, 2])])
    np.testing.assert_allclose(lm.p, [1 / 7, 3 / 7, 2 / 7, 1 / 7])
    nll, top1, top5 = baselines.score(lm, [np.array([3, 1, 0])])
    np.testing.assert_allclose(nll, [-math.log(3 / 7), -math.log(1 / 7)])
    assert top1.tolist() == [True, False] and top5.tolist() == [True, True]
    s = baselines.summary(nll, top1, top5)
    assert s["nll"] == pytest.approx(-(math.log(3 / 7) + math.log(1 / 7)) / 2) and s["tokens"] == 2
    assert s["ppl"] == pytest.approx(math.exp(s["nll"]))


# --- music statistics ---------------------------------------------------------------------------

def test_scale_consistency_of_a_c_major_scale_is_one_and_of_a_chromatic_scale_is_seven_twelfths():
    assert metrics.scale_consistency(melody(C_MAJOR)) == 1.0
    assert metrics.scale_consistency(melody(range(60, 72))) == pytest.approx(7 / 12)


def test_empty_bar_rate_with_one_silent_bar_of_four_is_a_quarter():
    score = make_score([(0, 1, 60, 80), (4, 2, 62, 80), (12, 1, 64, 80)])  # bars 1, 2, 4 (4/4)
    assert metrics.empty_bar_rate(score, 4) == 0.25


def test_a_note_held_over_the_bar_line_keeps_the_next_bar_from_being_empty():
    score = make_score([(0, 6, 60, 80), (12, 1, 64, 80)])  # bar 2 is held, bar 3 is silent
    assert metrics.empty_bar_rate(score, 4) == 0.25


def test_polyphony_averages_the_notes_sounding_over_the_time_something_sounds():
    # four-note chord for a quarter, a quarter of silence, two notes for two quarters
    score = make_score([(0, 1, p, 80) for p in (48, 52, 55, 60)] + [(2, 2, 64, 80), (2, 2, 67, 80)])
    assert metrics.polyphony(score, 1) == pytest.approx((4 * 1 + 2 * 2) / 3)


def test_notes_per_second_and_longest_note_follow_the_tempo():
    score = make_score([(i * 0.5, 0.5, 60, 80) for i in range(8)] + [(0, 3, 48, 80)], tempos=((0, 120.0),))
    assert metrics.notes_per_second(score, 1) == pytest.approx(9 / 2.0)  # a 4/4 bar at 120 qpm: 2 s
    assert metrics.longest_note_seconds(score, 1) == pytest.approx(1.5)


def test_pitch_class_js_divergence_is_zero_for_the_same_and_one_for_disjoint_classes():
    a = metrics.pitch_class_histogram(melody([60, 64, 67]))
    b = metrics.pitch_class_histogram(melody([61, 63, 66]))
    assert metrics.js_divergence(a, a) == 0.0
    assert metrics.js_divergence(a, b) == pytest.approx(1.0)


def test_intervals_follow_onset_then_pitch():
    score = make_score([(0, 1, 67, 80), (0, 1, 60, 80), (1, 1, 62, 80)])
    assert metrics.intervals(score).tolist() == [7, -5]


def test_a_continuation_copied_from_training_is_all_copied_with_its_full_length_as_longest_run():
    rng = np.random.default_rng(1)
    piece = melody(rng.integers(48, 84, size=40).tolist())
    other = melody(rng.integers(48, 84, size=30).tolist())
    index = metrics.CopyIndex([metrics.intervals(other), metrics.intervals(piece)])
    share, run = index.copying(metrics.intervals(piece))
    assert share == 1.0 and run == 40


def test_a_continuation_sharing_no_phrase_with_training_has_no_copied_ngrams():
    index = metrics.CopyIndex([metrics.intervals(melody(C_MAJOR * 3))])
    share, run = index.copying(metrics.intervals(melody([60, 61] * 10)))  # only +1/-1 steps
    assert share == 0.0 and run == 2  # the single rising semitone B->C occurs in the scale


def test_suffix_array_matches_sorting_the_suffixes():
    text = np.random.default_rng(2).integers(-3, 3, size=300)
    brute = sorted(range(len(text)), key=lambda i: text[i:].tolist())
    assert metrics.suffix_array(text).tolist() == brute


# --- the evaluate command ------------------------------------------------------------------------

def test_a_missing_corpus_folder_is_a_clear_user_error():
    with pytest.raises(MusicgenError, match="--data"):
        data_root({"data_root": "/nowhere/piano-midi-de"})


def test_evaluate_scores_model_and_baselines_on_the_same_tokens_and_writes_json(tiny_run, tmp_path):
    report = evaluate(tiny_run / "best", cfg=EvalConfig(seed_bars=2, bars=4, ngram_order=3))
    tokens = report["tokens"]
    assert tokens["gru"]["tokens"] == tokens["unigram"]["tokens"] == tokens["3-gram"]["tokens"] > 0
    assert tokens["gru"]["nll"] < tokens["unigram"]["nll"]
    cont = report["continuations"]
    assert cont["pieces"] == 2 and not cont["skipped_short"]  # one test piece per composer
    real = cont["stats"]["scale_consistency"]["held_out"]
    assert real["mean"] == 1.0 and real["n"] == 2  # the tiny pieces are C-major-like scales
    assert cont["stats"]["scale_consistency"]["generated"]["n"] == 4  # two continuations per piece
    row = cont["per_piece"][0]
    assert len(row["generated"]) == 2 and row["held_out"]["key_relation"] == "same"
    assert row["held_out"]["loop_share"] == 1.0  # every real bar repeats the one before
    coh = cont["coherence"]
    assert coh["headline"]["generated"]["n"] == 4 and coh["headline"]["held_out"]["n"] == 2
    assert set(coh["measures"]) == set(coherence.MEASURES)
    assert all(isinstance(g["out_of_band"], int) for g in row["generated"])
    assert "single-line bars in a row" in format_report(report)
    by_position = tokens["gru"]["by_position"]["all"]
    assert by_position["0-256"]["pieces"] == 2 and sum(b["tokens"] for b in by_position.values()) == \
        tokens["gru"]["tokens"]
    assert "NLL by token position" in format_report(report)
    out = tmp_path / "eval.json"
    args = argparse.Namespace(checkpoint=str(tiny_run / "best"), data="", pieces=1, json=str(out))
    assert main(args) == 0
    saved = json.loads(out.read_text())  # strict JSON: nan became null
    assert len(saved["test_pieces"]) == 1
    # the default 8 + 16 bars do not fit an 8-bar piece: it is listed, not measured
    cont = saved["continuations"]
    assert cont["pieces"] == 0 and cont["skipped_short"] == ["alpha/piece7.mid"]


def test_pieces_read_side_by_side_score_as_each_read_alone(tiny_run):
    import torch

    from musicgen.checkpoint import load_checkpoint
    from musicgen.data import Piece
    from musicgen.evaluate import piece_nll, piece_scores

    model, tok, _ = load_checkpoint(tiny_run / "best")
    rng = np.random.default_rng(0)
    pieces = [Piece(f"alpha/{n}.mid", "alpha", "val", rng.integers(3, len(tok.vocab), n))
              for n in (5, 40, 17, 60)]
    with torch.no_grad():
        together = piece_scores(model, pieces, tok, "cpu", batch=3, chunk=16)
        for p, got in zip(pieces, together):
            alone = piece_nll(model, p.ids, tok.vocab["Style_alpha"], "cpu")
            assert len(got[0]) == len(p.ids)
            np.testing.assert_allclose(got[0], alone[0], rtol=1e-4, atol=1e-5)
            assert (got[1] == alone[1]).all() and (got[2] == alone[2]).all()


def test_nll_by_position_buckets_each_token_by_its_place_in_its_piece():
    short = np.arange(300, dtype=float)  # a 300-token piece whose token i costs i nats
    long = np.full(5000, 2.0)
    out = position_nll([short, long])
    assert list(out) == ["0-256", "256-1k", "1k-4k", "4k+"]
    assert out["0-256"] == {"nll": (sum(range(256)) + 2 * 256) / 512, "tokens": 512, "pieces": 2}
    assert out["256-1k"] == {"nll": pytest.approx((sum(range(256, 300)) + 2 * 768) / 812), "tokens": 812,
                             "pieces": 2}
    assert out["1k-4k"] == {"nll": 2.0, "tokens": 3072, "pieces": 1}
    assert out["4k+"] == {"nll": 2.0, "tokens": 904, "pieces": 1}
    assert position_nll([short])["4k+"] == {"nll": None, "tokens": 0, "pieces": 0}


# --- the paper's note IDs ------------------------------------------------------------------------

def test_pitch_names_match_music21():
    from music21 import pitch

    assert [pitch_name(m) for m in range(21, 109)] == [str(pitch.Pitch(midi=m)) for m in range(21, 109)]


def test_paper_note_ids_name_notes_by_pitch_and_chords_by_normal_order():
    score = make_score([(0, 1, 64, 80), (0, 1, 67, 80, 1), (0, 1, 72, 80),  # C major, 1st inversion
                        (1, 1, 58, 80),  # a lone B-flat
                        (2, 1, 60, 80), (2, 1, 72, 80, 1),  # an octave: one pitch class
                        (3, 1, 62, 80), (3, 1, 66, 80), (3, 1, 69, 80)], tracks=2)  # D major
    assert note_ids(score) == ["0.4.7", "B-3", "0", "2.6.9"]


def test_lookup_memory_answers_random_split_windows_but_not_unseen_pieces():
    from musicgen.paper import lookup_scores, lookup_table

    seq = np.random.default_rng(3).integers(2, 50, size=60)
    x = np.lib.stride_tricks.sliding_window_view(seq[:-1], 5)
    y = seq[5:]
    memory = lookup_table(x[1::2], y[1::2], 4)  # every other window trains
    assert lookup_scores(memory, x[0:-1:2], y[0:-1:2])["acc"] == 1.0  # its right neighbour holds the answer
    fresh = np.random.default_rng(4).integers(50, 99, size=(10, 5))
    assert lookup_scores(memory, fresh, fresh[:, 0]) == {"acc": 0.0, "found": 0.0}


def test_paper_table_runs_end_to_end_on_a_tiny_folder(tiny_corpus, tmp_path):
    from musicgen.paper import PaperConfig, run_table

    cfg = PaperConfig(data=str(tiny_corpus / "alpha"), out=str(tmp_path), n_embd=8, n_hidden=8,
                      max_epochs=2, gru_seq_len=16, batch_size=8)
    table = run_table(cfg)
    assert [(r["run"], r["split"]) for r in table["rows"]] == [
        ("bigru-random", "random"), ("bigru-piece", "piece"), ("gru-piece", "piece"),
        ("lookup-39", "random"), ("lookup-39", "piece")]
    assert table["data"]["pieces"] == {"train": 6, "val": 1, "test": 1}
    assert (tmp_path / "table.md").read_text().startswith("| run |")


def test_corpus_limits_the_held_out_pieces_to_one_corpus_folder(tiny_run, tiny_corpus):
    cfg = EvalConfig(seed_bars=2, bars=4, ngram_order=2, corpus=tiny_corpus.name)
    assert len(evaluate(tiny_run / "best", cfg=cfg)["test_pieces"]) == 2
    with pytest.raises(MusicgenError, match="no test pieces from a corpus folder named 'pop909'"):
        evaluate(tiny_run / "best", cfg=EvalConfig(corpus="pop909"))
