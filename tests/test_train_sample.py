"""Training learns, checkpoints round-trip, sampling is reproducible and always grammatical."""

import csv
import json

import numpy as np
import pytest
import symusic
from conftest import make_score, tiny_piece, write_score
from miditok import TokSequence

from musicgen import tokenizer as tk
from musicgen.data import assign_splits, find_midi_files, load_corpus
from musicgen.errors import MusicgenError
from musicgen.sample import Generator, SampleConfig


@pytest.fixture(scope="module")
def gen(tiny_run):
    return Generator(tiny_run / "best", device="cpu")


def test_loss_falls_clearly_within_a_few_hundred_steps(tiny_run):
    rows = list(csv.DictReader(open(tiny_run / "loss.csv")))
    assert len(rows) == 3
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert last < 0.5 * first
    assert float(rows[-1]["val_loss"]) < 1.0  # the tiny pieces are nearly deterministic
    assert (tiny_run / "loss.png").stat().st_size > 1000


def test_run_writes_split_and_self_describing_checkpoint(tiny_run):
    split = json.loads((tiny_run / "split.json").read_text())
    assert sum(len(v) for v in split.values()) == 16
    assert len(split["test"]) == 2 and len(split["val"]) == 2  # one per composer each
    config = json.loads((tiny_run / "best" / "config.json").read_text())
    assert config["model"]["n_hidden"] == 64 and config["split"] == split
    assert sorted((tiny_run / "best").iterdir())[0].name == "config.json"
    assert not list(tiny_run.rglob("*.pt")) and not list(tiny_run.rglob("*.pkl"))


def test_saved_and_loaded_checkpoint_generates_identically(tiny_run, gen):
    again = Generator(tiny_run / "best", device="cpu")
    cfg = SampleConfig(bars=4, seed=5, style="alpha")
    assert gen.generate(None, cfg).midi_bytes() == again.generate(None, cfg).midi_bytes()


def test_same_seed_gives_byte_identical_midi(gen, tmp_path):
    seed = write_score(tiny_piece(), tmp_path / "seed.mid")
    cfg = SampleConfig(bars=4, seed=11, variations=2, temperature=1.3)
    a, b = gen.generate(seed, cfg), gen.generate(seed, cfg)
    assert a.midi_bytes() == b.midi_bytes()
    assert gen.generate(seed, SampleConfig(bars=4, seed=12, variations=2, temperature=1.3)).midi_bytes() \
        != a.midi_bytes()


def token_errors(gen, ids) -> float:
    body = [i for i in ids if i not in set(gen.tokenizer.special_tokens_ids)]
    return gen.tokenizer.tokens_errors(TokSequence(ids=body))


@pytest.mark.parametrize("settings", [dict(temperature=2.0, top_p=1.0), dict(top_k=1),
                                      dict(temperature=1.5, greedy_mix=0.5, repetition_penalty=1.3)])
def test_output_is_grammatical_and_decodes_to_valid_midi(gen, settings):
    result = gen.generate(None, SampleConfig(bars=6, seed=3, variations=3, style="beta", **settings))
    for ids, data in zip(result.tokens, result.midi_bytes()):
        assert token_errors(gen, ids) == 0
        assert sum(1 for i in ids if i == gen.grammar.bar_id) == 6
        assert data[:4] == b"MThd"
        assert len(tk.read_midi(data).tracks[0].notes) > 0


def test_variations_differ_from_each_other(gen):
    result = gen.generate(None, SampleConfig(bars=4, seed=1, variations=3, temperature=1.5, top_p=1.0))
    midis = result.midi_bytes()
    assert len(set(midis)) == 3


def test_continuation_follows_the_seed_and_can_be_cut_out(gen, tmp_path):
    seed = write_score(tiny_piece(bars=3), tmp_path / "seed.mid")
    result = gen.generate(seed, SampleConfig(bars=2, seed=0))
    full = tk.read_midi(result.midi_bytes()[0])
    only = tk.read_midi(result.midi_bytes(only_continuation=True)[0])
    assert result.split_tick == 3 * 4 * full.tpq  # three 4/4 bars of seed
    seed_notes = [n for n in full.tracks[0].notes if n.time < result.split_tick]
    assert len(seed_notes) == 3 * 11
    assert only.note_num() == full.note_num() - len(seed_notes)


def test_seed_bars_keeps_only_the_last_bars(gen, tmp_path):
    seed = write_score(tiny_piece(bars=8), tmp_path / "seed.mid")
    result = gen.generate(seed, SampleConfig(bars=1, seed_bars=2))
    assert result.split_tick == 2 * 4 * result.scores[0].tpq


@pytest.mark.parametrize("score", [
    make_score([(q, 1, 60 + q % 5, 70) for q in range(12)], time_sig=(6, 8), tempos=((0, 80.0), (3, 100.0))),
    make_score([(0, 3, 60, 70), (1, 3, 60, 90), (1, 1, 64, 60), (0.25, 8, 67, 50)]),  # overlaps
], ids=["six_eight_tempo_changes", "overlapping_notes"])
def test_unusual_seeds_work(gen, score, tmp_path):
    seed = write_score(score, tmp_path / "odd.mid")
    result = gen.generate(seed, SampleConfig(bars=2, seed=4))
    assert token_errors(gen, result.tokens[0]) == 0
    sigs = {(s.numerator, s.denominator) for s in result.scores[0].time_signatures}
    assert sigs == {(score.time_signatures[0].numerator, score.time_signatures[0].denominator)}


def test_type0_file_with_running_status_is_read(gen, tmp_path):
    # format 0, one track, running status: note-ons after the first omit the status byte
    events = bytes([0x00, 0x90, 60, 80, 0x00, 64, 80, 0x83, 0x60, 60, 0, 0x00, 64, 0,
                    0x00, 0xFF, 0x2F, 0x00])
    data = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") \
        + (480).to_bytes(2, "big") + b"MTrk" + len(events).to_bytes(4, "big") + events
    path = tmp_path / "type0.mid"
    path.write_bytes(data)
    assert tk.read_midi(path).note_num() == 2
    assert gen.generate(path, SampleConfig(bars=1)).scores[0].note_num() >= 2


def test_seed_without_playable_notes_is_a_clear_error(gen, tmp_path):
    drums = make_score([(q, 0.5, 38, 100) for q in range(8)], drum=True)
    with pytest.raises(MusicgenError, match="no playable piano notes"):
        gen.generate(write_score(drums, tmp_path / "drums.mid"), SampleConfig(bars=1))


def test_bad_settings_are_clear_errors(gen):
    with pytest.raises(MusicgenError, match="unknown style"):
        gen.generate(None, SampleConfig(style="nobody"))
    with pytest.raises(MusicgenError, match="bars"):
        gen.generate(None, SampleConfig(bars=0))
    with pytest.raises(MusicgenError, match="repetition-window"):  # a window of 0 would slice all history
        gen.generate(None, SampleConfig(repetition_penalty=1.2, repetition_window=0))


def test_corrupt_files_are_skipped_and_reported(tmp_path):
    root = tmp_path / "messy"
    for i in range(3):
        write_score(tiny_piece(shift=i), root / "gamma" / f"good{i}.mid")
    write_score(tiny_piece(), root / "gamma" / "UPPER.MID")
    (root / "gamma" / "text.mid").write_text("not a midi file")
    (root / "gamma" / "empty.midi").write_bytes(b"")
    (root / "gamma" / "cut.mid").write_bytes((root / "gamma" / "good0.mid").read_bytes()[:30])
    write_score(make_score([(0, 1, 38, 90)], drum=True), root / "gamma" / "drums.mid")
    assert len(find_midi_files(root)) == 8
    corpus, _ = load_corpus(root)
    good = ["gamma/UPPER.MID"] + [f"gamma/good{i}.mid" for i in range(3)]
    assert sorted(p.path for p in corpus.pieces) == good
    assert sorted(b[0] for b in corpus.bad) == ["gamma/cut.mid", "gamma/drums.mid", "gamma/empty.midi",
                                                "gamma/text.mid"]


def test_split_is_deterministic_piece_level_and_stratified():
    paths = [f"{c}/p{i}.mid" for c in ("a", "b") for i in range(10)]
    first, again = assign_splits(paths), assign_splits(list(reversed(paths)))
    assert first == again
    for c in ("a", "b"):
        kinds = [first[p] for p in paths if p.startswith(c)]
        assert kinds.count("test") == 1 and kinds.count("val") == 1


def test_untrained_style_dropout_keeps_any_style_working(gen):
    assert gen.styles[0] == "any"
    assert gen.generate(None, SampleConfig(bars=2, style="any")).scores[0].note_num() > 0
    assert isinstance(gen.generate(None, SampleConfig(bars=2)).scores[0], symusic.Score)


def test_torchrun_ddp_trains_on_two_processes(tiny_corpus, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "musicgen", "train", "--data", str(tiny_corpus), "--out", str(out), "--epochs", "1",
           "--steps-per-epoch", "5", "--seq-len", "32", "--batch-size", "4", "--n-hidden", "32",
           "--n-embd", "16", "--n-layer", "1", "--threads", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "best" / "model.safetensors").is_file()
    assert len((out / "loss.csv").read_text().splitlines()) == 2


def test_carried_state_training_runs_and_resumes(tiny_corpus, tmp_path):
    from musicgen.model import ModelConfig
    from musicgen.train import TrainConfig, train

    out = tmp_path / "tbptt"
    settings = dict(data=(str(tiny_corpus),), out=str(out), seq_len=32, batch_size=4, steps_per_epoch=6,
                    transpose=0, half=False, carry_state=True, corpus_weights=())
    mcfg = dict(n_embd=16, n_hidden=32, n_layer=2)
    train(TrainConfig(epochs=1, **settings), ModelConfig(**mcfg))
    train(TrainConfig(epochs=2, resume=True, lr=1e-3, **settings), ModelConfig(**mcfg))
    rows = list(csv.DictReader(open(out / "loss.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[1]["lr"]) == 1e-3
    config = json.loads((out / "last" / "config.json").read_text())
    assert config["train"]["carry_state"] and config["data_roots"] == [str(tiny_corpus)]
    assert config["corpora"][0]["name"] == tiny_corpus.name
    assert config["weights_licence"].startswith("unknown")


def test_train_takes_several_corpus_folders_after_one_flag():
    from musicgen.cli import build_parser
    from musicgen.config import from_args
    from musicgen.train import TrainConfig

    args = build_parser().parse_args(["train", "--data", "a", "b", "c", "--corpus-weights", "pop909=0.5"])
    tcfg = from_args(TrainConfig, args)
    assert tcfg.data == ("a", "b", "c") and tcfg.weights() == {"pop909": 0.5}
    assert from_args(TrainConfig, build_parser().parse_args(["train"])).data == ()


def test_pick_draws_from_the_nucleus_by_inverse_cdf_over_allowed_ids():
    import numpy as np

    from musicgen.sample import pick

    logits = np.full((1, 10), 50.0, dtype=np.float32)  # disallowed ids would win if looked at
    allowed = np.array([2, 4, 6, 8])
    logits[0, allowed] = np.log([0.5, 0.3, 0.15, 0.05])
    cfg = SampleConfig(temperature=1.0, top_p=0.75)  # nucleus: ids 2 and 4 (0.5 + 0.3 >= 0.75)
    none = np.zeros(10, dtype=np.uint8)

    def draw(u, c=cfg, banned=none, history=()):
        return pick(logits, [allowed], [banned], c, [u, 0.99], [list(history)])[0]

    # the nucleus renormalised: id 2 below u = 0.5 / 0.8 = 0.625, id 4 above
    assert [draw(u) for u in (0.0, 0.62, 0.63, 0.999)] == [2, 2, 4, 4]
    assert draw(0.99, SampleConfig(temperature=1.0, top_p=1.0)) == 8
    assert draw(0.99, SampleConfig(temperature=1.0, top_p=1.0, top_k=2)) == 4
    assert draw(0.99, SampleConfig(temperature=0.0)) == 2  # greedy
    assert pick(logits, [allowed], [none], SampleConfig(greedy_mix=0.5), [0.99, 0.3], [[]]) == [2]
    assert pick(logits, [np.array([7])], [none], cfg, [0.5, 0.5], [[]]) == [7]
    # a banned id is out of the draw: nucleus of 4, 6, 8 renormalised, 4 alone holds 0.6 < 0.75
    banned = none.copy()
    banned[2] = 1
    assert [draw(u, banned=banned) for u in (0.0, 0.66, 0.67)] == [4, 4, 6]
    # penalty 2 on id 2's log 0.5 (negative: doubled): weights 0.25, 0.3, 0.15, 0.05, so 4 leads
    pen = SampleConfig(temperature=0.0, repetition_penalty=2.0)
    assert draw(0.0, pen, history=[2]) == 4 and draw(0.0, pen, history=[9]) == 2


@pytest.mark.parametrize("n_layer", [1, 3])
def test_gru_step_matches_the_module_step(n_layer):
    import torch

    from musicgen.model import GRULM, GRUStep, ModelConfig

    torch.manual_seed(0)
    model = GRULM(ModelConfig(vocab_size=40, n_embd=8, n_hidden=16, n_layer=n_layer)).eval()
    step, idx = GRUStep(model), torch.tensor([3, 0, 39])
    with torch.no_grad():
        h_ref = h = None
        for _ in range(5):  # from no state, then carrying it
            ref, h_ref = model.step(idx, h_ref)
            got, h = step(idx, h)
            assert got.shape == (3, 40) and h.shape == (n_layer, 3, 16)
            assert torch.allclose(got, ref, atol=1e-5) and torch.allclose(h, h_ref, atol=1e-6)


def test_key_bias_weighs_each_pitch_class_by_its_count_in_the_last_bars(gen):
    g, v = gen.grammar, gen.tokenizer.vocab
    bar, ts = v["Bar_None"], v["TimeSig_4/4"]
    old = [bar, ts, v["Pitch_61"]]  # a C# nine bars back: outside the window
    recent = [t for _ in range(8) for t in (bar, ts, v["Pitch_60"], v["Pitch_72"], v["Pitch_67"])]
    bias = g.key_bias(old + recent, 0.5)
    assert bias[v["Pitch_48"]] == 0 and bias[v["Bar_None"]] == 0  # C: the most used class
    assert bias[v["Pitch_55"]] == pytest.approx(0.5 * np.log(9 / 17))  # G: 8 of C's 16
    assert bias[v["Pitch_61"]] == pytest.approx(0.5 * np.log(1 / 17))  # C#: none in the window
    assert g.key_bias(recent, 0.0) is None and g.key_bias([bar, ts], 1.0) is None


def test_a_strong_key_hold_keeps_every_new_pitch_in_the_seeds_classes(gen, tmp_path):
    seed = write_score(make_score([(i * 0.5, 0.5, p, 80) for i, p in enumerate([60, 64, 67, 72] * 16)]),
                       tmp_path / "triad.mid")
    result = gen.generate(seed, SampleConfig(bars=4, seed=2, key_hold=10.0, temperature=1.5, top_p=1.0))
    new = [n.pitch % 12 for n in result.scores[0].tracks[0].notes if n.time >= result.split_tick]
    assert new and set(new) <= {0, 4, 7}
    free = gen.generate(seed, SampleConfig(bars=4, seed=2, temperature=1.5, key_hold=0.0))
    assert {n.pitch % 12 for n in free.scores[0].tracks[0].notes if n.time >= free.split_tick} - {0, 4, 7}


def test_texture_hold_pushes_notes_when_behind_the_seeds_density_and_holds_back_when_ahead(gen):
    from musicgen.grammar import RowState, TextureHold

    g, v = gen.grammar, gen.tokenizer.vocab
    bar, ts, pos = v["Bar_None"], v["TimeSig_4/4"], v["Position_0"]
    chord = [v["Pitch_60"], v["Velocity_79"], v["Duration_1.0.8"]] * 1
    prime = [v["Style_any"]] + [t for _ in range(8) for t in [bar, ts, pos] + chord * 4]  # 4 notes a bar
    assert g.notes_per_bar(prime) == 4.0 and g.notes_per_bar(prime[:1]) == 0.0
    hold = TextureHold(g, prime, 1.0)
    row = RowState(g)
    for t in prime[1:] + [bar, ts, v["Position_16"], *chord]:  # half way through the first new bar
        row.update(g, t)
    assert row.prev == "Duration" and row.bars == 9
    assert hold.offset(row, 8, played=1) == pytest.approx(np.log((4 * 0.5 + 4) / (1 + 4)))  # behind: up
    assert hold.offset(row, 8, played=9) == pytest.approx(np.log((4 * 0.5 + 4) / (9 + 4)))  # ahead: down
    assert hold.offset(row, 8, played=500) == -TextureHold.LIMIT
    row.update(g, v["Position_20"])
    assert hold.offset(row, 8, played=1) == 0.0  # after a Position only a note or tempo may come
    assert not TextureHold(g, prime, 0.0).active and not TextureHold(g, prime[:1], 1.0).active


def test_a_strong_texture_hold_keeps_the_new_bars_near_the_seeds_notes_per_bar(gen, tmp_path):
    dense = [(i * 0.25, 0.25, 60 + (i * 5) % 24, 80) for i in range(16 * 8)]  # 16 notes a bar
    seed = write_score(make_score(dense), tmp_path / "dense.mid")

    def per_bar(texture_hold):
        out = gen.generate(seed, SampleConfig(bars=4, seed=3, texture_hold=texture_hold, variations=4))
        return [sum(1 for n in s.tracks[0].notes if n.time >= out.split_tick) / 4 for s in out.scores]

    free, held = per_bar(0.0), per_bar(4.0)
    assert abs(np.mean(held) - 16) < abs(np.mean(free) - 16)


def test_a_piece_from_scratch_never_opens_with_an_empty_bar_and_a_continuation_may(gen):
    from musicgen.grammar import RowState

    g, v = gen.grammar, gen.tokenizer.vocab
    bar, ts, pos, tempo = v["Bar_None"], v["TimeSig_4/4"], v["Position_0"], next(
        i for t, i in v.items() if t.startswith("Tempo_"))
    row = RowState(g)
    for t in (bar, ts):
        row.update(g, t)
    assert bar not in row.allowed(g)  # Bar TimeSig Bar: an empty first bar
    for t in (pos, tempo):
        row.update(g, t)
    assert bar not in row.allowed(g)  # nor a first bar of a tempo alone
    for t in (v["Pitch_60"], v["Velocity_79"], v["Duration_1.0.8"]):
        row.update(g, t)
    assert bar in row.allowed(g)
    for t in (bar, ts):
        row.update(g, t)
    assert bar in row.allowed(g)  # after the first bar a rest is music too
