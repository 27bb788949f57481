"""Coherence measures of a continuation against its seed, each pinned on hand-built MIDI."""

import math

import numpy as np
import pytest
from conftest import make_score

from musicgen import coherence as co
from musicgen import metrics
from musicgen.errors import MusicgenError
from musicgen.evaluate import EvalConfig

# two bars of eighth notes around C major (tonic and dominant weighted): C major by Krumhansl-Schmuckler
C_TUNE = [60, 64, 67, 72, 67, 64, 60, 62, 59, 60, 65, 69, 67, 65, 64, 60]
A_MINOR_TUNE = [57, 60, 64, 69, 64, 60, 57, 59, 56, 57, 62, 65, 64, 62, 60, 57]


def melody(pitches, step=0.5, start=0.0):
    """One note per `step` quarters from `start`, each as long as the step (4/4: 8 eighths a bar)."""
    return make_score([(start + i * step, step, p, 80) for i, p in enumerate(pitches)])


def bars_of(*bars):
    """A 4/4 score from per-bar lists of (onset quarters in the bar, duration quarters, pitch)."""
    return make_score([(4 * b + on, dur, p, 80) for b, notes in enumerate(bars) for on, dur, p in notes])


def line(n_bars, low=60):
    """n_bars of a single eighth-note line rising and falling (never two notes at once)."""
    return melody([low + (i % 8) for i in range(8 * n_bars)])


# --- texture ------------------------------------------------------------------------------------

def test_a_melody_without_chords_for_nine_bars_is_a_single_line_run_of_nine():
    assert co.single_line_run(line(9), 9) == 9
    assert co.single_line_run(line(9), 5) == 5  # only the window's bars count


def test_one_chord_splits_the_run_and_touching_notes_are_not_together():
    notes = [(i * 0.5, 0.5, 60 + i % 8, 80) for i in range(72)] + [(16, 0.5, 48, 80)]  # chord in bar 5
    score = make_score(notes)
    assert co.single_line_run(score, 9) == 4  # bars 1-4 and 6-9


def test_a_note_held_over_the_bar_line_under_the_next_bar_breaks_the_line_there():
    notes = [(i * 0.5, 0.5, 60 + i % 8, 80) for i in range(48) if i != 23]  # six bars, bar 3 ends early
    notes.append((11.5, 1.0, 72, 80))  # the last eighth of bar 3 held into bar 4's first eighth
    assert co.single_line_run(make_score(notes), 6) == 3  # bars 1-3, then bar 4 sounds two, 5-6


def test_a_silent_bar_ends_the_single_line_run():
    notes = [(i * 0.5, 0.5, 64, 80) for i in range(24)]  # bars 1-3
    notes += [(16 + i * 0.5, 0.5, 64, 80) for i in range(40)]  # bars 5-9; bar 4 silent
    assert co.single_line_run(make_score(notes), 9) == 5
    assert co.single_line_run(make_score([]), 4) == 0


# --- range, register, pitch classes, density ---------------------------------------------------

def test_bar_range_change_is_the_median_bar_range_minus_the_seeds():
    seed = bars_of([(0, 1, 60), (1, 1, 72)], [(0, 2, 60), (2, 2, 67)])  # ranges 12, 7: median 9.5
    cont = bars_of([(0, 1, 60), (1, 1, 62)], [(0, 1, 60), (2, 1, 64)], [(0, 4, 70)], [])  # 2, 4, 0
    assert co.bar_ranges(cont, 4).tolist() == [2, 4, 0]  # the silent fourth bar has no range
    assert co.bar_range_change(seed, cont, 4) == 2.0 - 9.5
    assert math.isnan(co.bar_range_change(seed, bars_of([]), 1))


def test_register_shift_is_the_difference_of_mean_pitches():
    seed = melody([60, 64])  # mean 62
    cont = melody([48, 50, 49])  # mean 49
    assert co.register_shift(seed, cont, 1) == -13.0


def test_pitch_class_distance_is_zero_to_the_same_classes_and_one_to_disjoint_ones():
    seed = melody([60, 64, 67])
    assert co.pitch_class_distance(seed, melody([72, 76, 79]), 1) == pytest.approx(0.0, abs=1e-12)
    assert co.pitch_class_distance(seed, melody([61, 63, 66]), 1) == pytest.approx(1.0)


def test_density_ratio_divides_notes_per_bar_and_counts_the_seeds_empty_bars_when_told():
    seed = bars_of([(i, 1, 60) for i in range(4)], [(i, 1, 62) for i in range(4)])  # 4 a bar
    cont = bars_of([(i / 2, 0.5, 64) for i in range(8)], [(i, 1, 65) for i in range(4)])  # 6 a bar
    assert co.density_ratio(seed, cont, 2) == 1.5
    assert co.density_ratio(seed, cont, 2, seed_bars=4) == 3.0  # 8 notes over 4 bars: 2 a bar


# --- key --------------------------------------------------------------------------------------

def test_krumhansl_schmuckler_finds_the_key_of_a_tonic_heavy_tune_in_every_transposition():
    for shift in range(12):
        assert co.estimate_key(melody([p + shift for p in C_TUNE])) == (shift, "major")
    assert co.estimate_key(melody(A_MINOR_TUNE)) == (9, "minor")
    assert co.key_name((6, "major")) == "F# major" and co.key_name(None) == "-"
    assert co.estimate_key(melody(range(60, 72))) is None  # all twelve classes equally long


def test_key_relation_of_a_c_major_seed_same_close_and_unrelated():
    seed = melody(C_TUNE)

    def rel(shift, tune=C_TUNE):
        return co.key_relation(seed, melody([p + shift for p in tune]), 2)

    assert rel(12) == "same"
    assert rel(7) == "close" and rel(5) == "close"  # G major, F major: dominant, subdominant
    assert rel(0, A_MINOR_TUNE) == "close" and rel(7, A_MINOR_TUNE) == "close"  # A minor, E minor
    assert rel(3, A_MINOR_TUNE) == "close"  # C minor: the parallel minor
    assert rel(6) == "unrelated" and rel(2) == "unrelated"  # F# major, D major
    assert rel(4, A_MINOR_TUNE) == "unrelated"  # C# minor
    assert co.key_relation(seed, make_score([]), 2) == "unknown"


def test_the_close_keys_of_c_major_and_of_a_minor():
    close = lambda k: sorted(co.key_name(b) for b in [(t, m) for t in range(12) for m in ("major", "minor")]
                             if co.relation(k, b) == "close")
    assert close((0, "major")) == ["A minor", "C minor", "D minor", "E minor", "F major", "G major"]
    assert close((9, "minor")) == ["A major", "C major", "D minor", "E minor", "F major", "G major"]


# --- left hand, loops ---------------------------------------------------------------------------

def test_left_hand_presence_counts_bars_where_a_note_below_middle_c_sounds():
    score = bars_of([(0, 1, 48), (1, 1, 72)], [(0, 1, 60), (1, 1, 72)],  # middle C is not below it
                    [(0, 8, 55)], [(0, 1, 72)])  # bar 3's G3 is held through bar 4
    assert co.left_hand_share(score, 4) == 0.75
    assert co.left_hand_share(score, 2) == 0.5


def test_a_bar_repeated_two_bars_later_is_a_loop_and_one_five_bars_later_is_not():
    a, b, c, d, e = ([(i, 1, p + i)] for i, p in enumerate((60, 62, 64, 65, 67)))  # one note each
    seed = bars_of([(0, 4, 50)])
    assert co.loop_share(seed, bars_of(a, b, a, c), 4) == 0.25
    assert co.loop_share(seed, bars_of(a, b, c, d, e, a), 6) == 0.0
    assert co.loop_share(bars_of(a), bars_of(a, b, c, d), 4) == 0.25  # the seed's last bar, 1 earlier
    assert co.loop_share(seed, bars_of(a, [], a), 3) == 0.5  # the silent bar is left out
    assert co.loop_share(seed, bars_of([(0, 1, 60)], [(0, 2, 60)]), 2) == 0.0  # another duration
    assert math.isnan(co.loop_share(seed, bars_of([], []), 2))


def test_bar_contents_are_onsets_in_the_bar_pitches_and_durations_in_ticks():
    score = bars_of([(1, 1, 64), (0, 2, 60)], [(0.5, 4, 67)])
    assert co.bar_contents(score, 2) == [((0, 60, 960), (480, 64, 480)), ((240, 67, 1920),)]


# --- copying -----------------------------------------------------------------------------------

def test_a_copied_scale_or_repeated_chord_is_trivial_but_a_copied_30_note_melody_counts():
    rng = np.random.default_rng(5)
    tune = [int(p) for p in rng.choice([48, 53, 57, 62, 64, 67, 71, 76, 79], size=30)]
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79]
    train = melody([40, 41] + scale + [100] + tune + [30, 100])
    index = metrics.CopyIndex([metrics.intervals(train)])
    steps = metrics.intervals(melody(scale))
    assert index.copying(steps)[1] == 12  # all 12 notes copied ...
    assert index.longest_nontrivial(steps) == 0  # ... but a scale is trivial
    assert index.longest_nontrivial(metrics.intervals(melody(tune))) == 30
    chords = make_score([(b, 0.5, p, 80) for b in range(8) for p in (48, 55, 60, 64, 67)])
    index = metrics.CopyIndex([metrics.intervals(chords), metrics.intervals(train)])
    assert index.copying(metrics.intervals(chords))[1] == 40  # eight C major chords, copied ...
    assert index.longest_nontrivial(metrics.intervals(chords)) == 0  # ... are repeated notes
    stats = metrics.continuation_stats(melody(tune), 4, melody(scale), index)
    assert stats["longest_copied_nontrivial"] == 30.0 == stats["longest_copied_notes"]


def test_trivial_patterns_are_repeated_notes_octaves_one_way_scales_and_three_class_figures():
    assert metrics.trivial([0, 0, 0]) and metrics.trivial([12, -12, 12, 0])
    assert metrics.trivial([2, 2, 1, 2, 2, 2, 1]) and metrics.trivial([-1, -2, 0, -2])
    assert metrics.trivial([2, 2, 1, -12, 2, 2])  # a rising scale restarted an octave lower
    assert metrics.trivial([])
    assert metrics.trivial([1, -1, 1, -1]) and metrics.trivial([7, -3, 3, -7, 7, -3])  # trill, Alberti bass
    assert metrics.trivial([7, 5, 4, 3, 5, 4, -28] * 3)  # one C major chord, spread over 7 notes, thrice
    assert not metrics.trivial([2, 2, -2, -2, 5])  # C D E D C F: four classes, turning back
    assert not metrics.trivial([4, 3, 3])  # a seventh chord: four classes
    assert not metrics.trivial([2, 2, 1, 2, 5])  # a scale then a leap


# --- the report's second pass ----------------------------------------------------------------------

def row(**values):
    base = dict.fromkeys(co.MEASURES, 0.0)
    return {**base, "key_relation": "same", **values}


def test_out_of_band_counts_measures_strictly_outside_the_real_5th_to_95th_percentiles():
    real = [row(single_line_run=float(x), register_shift=float(-x)) for x in range(21)]  # p5 1, p95 19
    gen = [row(single_line_run=20.0, register_shift=-20.0, density_ratio=float("nan")),
           row(single_line_run=19.0, register_shift=-1.0),
           row(single_line_run=0.0, register_shift=-10.0, pc_js_to_seed=0.5)]
    coh = co.section(gen, real)
    assert coh["measures"]["single_line_run"]["held_out"] == {"mean": 10.0, "p5": 1.0, "p95": 19.0, "n": 21}
    assert [g["out_of_band"] for g in gen] == [2, 0, 2]
    assert gen[2]["outside"] == ["single_line_run", "pc_js_to_seed"]  # 0.5 against a band [0, 0]
    assert [r["out_of_band"] for r in real].count(2) == 2  # the real extremes: 0 and 20, twice each
    assert coh["headline"]["held_out"]["share_out_of_band"] == 0.0


def test_headline_shares_and_summaries():
    rows = [row(out_of_band=3, single_line_run=8.0, key_relation="unrelated", bar_range_change=-8.0,
                pc_js_to_seed=0.4, longest_copied_nontrivial=25.0),
            row(out_of_band=2, single_line_run=7.0, key_relation="close", bar_range_change=2.0,
                pc_js_to_seed=0.2, longest_copied_nontrivial=10.0),
            row(out_of_band=0, single_line_run=0.0, bar_range_change=float("nan"), pc_js_to_seed=0.3)]
    h = co.headline(rows)
    assert h == {"n": 3, "share_out_of_band": 1 / 3, "share_single_line": 1 / 3, "share_key_unrelated": 1 / 3,
                 "median_bar_range_change": -3.0, "mean_pc_js_to_seed": pytest.approx(0.3),
                 "max_longest_copied_nontrivial": 25.0}
    text = "\n".join(co.format_section(co.section(rows, rows[1:]), per_piece=2))
    assert "continuations in a key unrelated to the seed's" in text and "33%" in text


def test_measures_of_a_continuation_that_loops_one_bar_in_a_foreign_key():
    seed = make_score([(i * 0.5, 0.5, p, 80) for i, p in enumerate(C_TUNE)] + [(0, 8, 36, 60)])
    bar = [(i * 0.5, 0.5, p + 6, 80) for i, p in enumerate(C_TUNE[:8])]  # F# major, one line
    cont = make_score([(4 * b + on, d, p, v) for b in range(4) for on, d, p, v in bar])
    m = co.measures(seed, cont, 4, seed_bars=2)
    assert m["single_line_run"] == 4.0 and m["loop_share"] == 0.75 and m["left_hand_share"] == 0.0
    assert m["density_ratio"] == 8 / (17 / 2) and m["key_relation"] == "unrelated"
    assert m["seed_key"] == "C major" and m["key"] == "F# major"


def test_continuations_per_piece_must_fit_one_batch():
    assert EvalConfig().continuations == 2
    with pytest.raises(MusicgenError, match="--continuations"):
        EvalConfig(continuations=0)
