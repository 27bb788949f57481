"""Audio style critic: features, inference on a tiny model, junk input, the shipped critic, training,
cross-validation, retesting, saved configs and the command line."""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest
import soundfile
import torch
from conftest import tiny_piece, write_score

from musicgen.critic import api, features
from musicgen.critic.api import Classifier, classify_audio, classify_file, classify_score, load_classifier
from musicgen.critic.cli import register
from musicgen.critic.features import (
    FLOOR_DB,
    FeatureConfig,
    clip_starts,
    filterbank,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    resample,
    shift_keys,
)
from musicgen.critic.model import ModelConfig, StyleEnsemble, StyleGRU
from musicgen.errors import MusicgenError
from musicgen.render.audio import render_audio, write_mp3, write_wav
from musicgen.resources import CLASSIFIER_DIR

CLASSES = ["alpha", "beta", "gamma"]
SR = 16000
# the first shipped critic's settings: 64 mel bands, stacked frames, 8 clips in one key (quick to run)
MEL = dict(n_fft=1024, n_mels=64, scale="mel", max_clips=8, key_shifts=0)
SEMI = dict(n_fft=2048, n_mels=88, scale="semitone", max_clips=8, key_shifts=0)  # 88 keys, judged as trained
TINY = dict(n_proj=8, n_hidden=8, n_layer=1)


def run_cli(argv: list[str]) -> int:
    """What `musicgen ARGV` returns with the critic's subcommands: user errors exit 2."""
    parser = argparse.ArgumentParser(prog="musicgen")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MusicgenError:
        return 2


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A randomly initialised classifier, saved the way the shipped one is."""
    torch.manual_seed(0)
    model = StyleGRU(ModelConfig(n_mels=64, conv=0, n_proj=16, n_hidden=8, n_layer=1, n_classes=len(CLASSES)))
    folder = tmp_path_factory.mktemp("classifier")
    api.save_classifier(folder, model, CLASSES, FeatureConfig(**MEL), {"note": "random weights"})
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> Classifier:
    return load_classifier(tiny_folder)


@pytest.fixture(scope="module")
def piece_audio() -> np.ndarray:
    """A 16-second two-hand piece rendered at 44.1 kHz, (n, 2)."""
    return render_audio(tiny_piece(bars=8), sample_rate=44100)


def tone(seconds: float, hz: float = 440.0, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def assert_valid(result: dict) -> None:
    probs = result["probabilities"]
    assert set(probs) == set(CLASSES)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert result["top"] == max(probs, key=probs.get)


def shipped_config() -> dict:
    return json.loads((CLASSIFIER_DIR / "config.json").read_text())


# ---- features --------------------------------------------------------------------------------

def test_log_mel_has_one_frame_per_hop_for_a_known_length():
    cfg = FeatureConfig(**MEL)
    assert log_mel(tone(10.0), cfg).shape == (1 + 160000 // 368, 64) == (435, 64)
    assert log_mel(tone(1.0), cfg).shape == (44, 64)
    assert cfg.clip_frames == 435


def test_slaney_mel_scale_fixed_points():
    # linear up to 1 kHz (15 mel), then 27 mel per factor of 6.4: librosa's default scale
    assert hz_to_mel(np.array([0.0, 200.0, 1000.0, 6400.0])) == pytest.approx([0.0, 3.0, 15.0, 42.0])
    hz = np.array([27.5, 440.0, 4186.0])
    assert mel_to_hz(hz_to_mel(hz)) == pytest.approx(hz)


def test_a_tone_is_loudest_in_the_mel_band_centred_nearest_it():
    cfg = FeatureConfig(**MEL)
    centres = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]
    for hz in (110.0, 440.0, 2000.0):
        band = int(log_mel(tone(2.0, hz), cfg).mean(axis=0).argmax())
        assert band == int(np.abs(centres - hz).argmin())


def test_every_mel_band_has_weight():
    fb = mel_filterbank(16000, 1024, 64, 27.5, 8000.0)
    assert fb.shape == (64, 513) and (fb.sum(axis=1) > 0).all()


@pytest.mark.parametrize("n_fft, keys", [(1024, (69, 70, 100)), (2048, (33, 57, 69, 70, 100)),
                                         (4096, (33, 57, 69, 70, 100))])  # A1 A3 A4 B-flat4 E7
def test_a_tone_is_loudest_in_its_piano_keys_semitone_band(n_fft, keys):
    cfg = FeatureConfig(n_fft=n_fft, n_mels=88, scale="semitone")
    assert (filterbank(cfg).sum(axis=1) > 0).all()  # even A0, narrower than a 1024-point bin
    for key in keys:  # 1024 points (15.6 Hz bins) cannot tell semitones apart below C4
        hz = 440.0 * 2 ** ((key - 69) / 12)
        assert int(log_mel(tone(2.0, hz), cfg).mean(axis=0).argmax()) == key - 21


def test_bad_band_settings_are_user_errors():
    with pytest.raises(MusicgenError, match="at least 88 bands"):
        filterbank(FeatureConfig(scale="semitone", n_mels=64))
    with pytest.raises(MusicgenError, match="unknown band scale"):
        filterbank(FeatureConfig(scale="bark"))
    with pytest.raises(MusicgenError, match="top band"):
        filterbank(FeatureConfig(scale="semitone", n_mels=88, sample_rate=8000))
    with pytest.raises(MusicgenError, match="top band"):  # B8's upper neighbour is above 8 kHz
        filterbank(FeatureConfig(scale="semitone", n_mels=99, n_fft=2048))
    with pytest.raises(MusicgenError, match="top band"):  # the filterbank itself checks too
        features.semitone_filterbank(8000, 2048, 88)


def test_semitone_bands_above_c8_keep_the_keys_and_go_on_by_semitones():
    keys = filterbank(FeatureConfig(scale="semitone", n_mels=88, n_fft=2048))
    more = filterbank(FeatureConfig(scale="semitone", n_mels=98, n_fft=2048))
    assert more.shape == (98, 1025) and np.array_equal(more[:88], keys)  # the keys are untouched
    cfg = FeatureConfig(scale="semitone", n_mels=98, n_fft=2048)
    for key in (100, 112, 118):  # E7, E8, A-sharp8: past the keyboard, partials only
        hz = 440.0 * 2 ** ((key - 69) / 12)
        assert int(log_mel(tone(2.0, hz), cfg).mean(axis=0).argmax()) == key - 21


def test_resample_keeps_duration_and_pitch():
    x = tone(2.0, 1000.0, 44100)
    y = resample(x, 44100, SR)
    assert len(y) == 2 * SR
    assert np.abs(np.fft.rfft(y)).argmax() * SR / len(y) == pytest.approx(1000.0, abs=1.0)
    assert np.abs(y).max() == pytest.approx(0.3, abs=0.02)


def test_clip_starts_are_evenly_spaced_and_cover_the_piece():
    assert clip_starts(400, 435, 8) == [0]
    assert clip_starts(1000, 435, 8) == [0, 282, 565]
    assert clip_starts(10_000, 435, 8) == [0, 1366, 2733, 4099, 5466, 6832, 8199, 9565]


def test_shift_keys_moves_semitone_bands_like_a_transposition():
    x = np.arange(2 * 5, dtype=np.float32).reshape(2, 5)
    assert shift_keys(x, 2).tolist() == [[FLOOR_DB, FLOOR_DB, 0, 1, 2], [FLOOR_DB, FLOOR_DB, 5, 6, 7]]
    assert shift_keys(x, -1).tolist() == [[1, 2, 3, 4, FLOOR_DB], [6, 7, 8, 9, FLOOR_DB]]
    assert shift_keys(x, 0).tolist() == x.tolist()
    cfg = FeatureConfig(n_fft=2048, n_mels=88, scale="semitone")
    a4, b4 = (log_mel(tone(2.0, 440.0 * 2 ** (k / 12)), cfg).mean(axis=0) for k in (0, 2))
    assert int(shift_keys(a4[None], 2)[0].argmax()) == int(b4.argmax()) == 71 - 21


# ---- configs: defaults, test-time settings, saved configs, refusals -------------------------

def test_defaults_are_the_shipped_recipe():
    from musicgen.critic.train import TrainConfig

    shipped = shipped_config()
    assert FeatureConfig() == features.load_features(shipped["features"])
    assert ModelConfig(n_classes=len(shipped["classes"])) == ModelConfig(**shipped["model"])
    recipe = ("pitch_shift", "gain_db", "lr", "weight_decay", "batch_size", "steps_per_epoch", "patience")
    assert {k: getattr(TrainConfig(), k) for k in recipe} == {k: shipped["train"][k] for k in recipe}


def test_test_time_settings_are_one_thing_on_feature_config():
    cfg = FeatureConfig(**MEL)
    assert FeatureConfig.TEST_TIME == ("max_clips", "key_shifts")
    assert set(asdict(cfg)) - set(cfg.recipe()) == {"max_clips", "key_shifts"}
    assert set(cfg.recipe()) - set(cfg.render_settings()) == {"clip_sec"}
    semi = FeatureConfig(**SEMI)
    other = semi.with_test_time(32, 3)
    assert (other.max_clips, other.key_shifts) == (32, 3) and (semi.max_clips, semi.key_shifts) == (8, 0)
    assert other.recipe() == semi.recipe() and other != semi
    with pytest.raises(MusicgenError, match="--key-shifts"):  # the result is checked like any other
        cfg.with_test_time(8, 1)
    # the render cache's key: exactly what it was before the restructuring, so caches stay valid
    assert json.dumps(FeatureConfig().render_settings(), sort_keys=True) == (
        '{"fmax": 8000.0, "fmin": 27.5, "hop": 368, "n_fft": 2048, "n_mels": 98, "sample_rate": 16000, '
        '"scale": "semitone"}')


def test_render_cache_names_ignore_clip_length_and_test_time_settings(tiny_corpus, tmp_path):
    from musicgen.critic.corpus import cache_path

    f = tiny_corpus / "alpha" / "piece0.mid"
    one = cache_path(f, FeatureConfig(**MEL), tmp_path)
    assert cache_path(f, FeatureConfig(**{**MEL, "clip_sec": 5.0, "max_clips": 2}), tmp_path) == one
    assert cache_path(f, FeatureConfig(**{**MEL, "n_mels": 63}), tmp_path) != one


def test_saved_configs_with_retired_options_at_their_neutral_value_load():
    from musicgen.critic.model import load_model_config
    from musicgen.critic.train import TrainConfig, load_train_config

    model = {**asdict(ModelConfig()), "band_stats": False}
    assert load_model_config(model) == ModelConfig()
    train = {**asdict(TrainConfig()), "ema": 0.0, "masks": 0, "transposed": 0}
    assert load_train_config(train) == TrainConfig()
    # saves from before a field existed meant what the code then did: mel bands, no convolution ...
    old = {k: v for k, v in asdict(FeatureConfig(**MEL)).items() if k not in ("scale", "key_shifts")}
    assert features.load_features(old) == FeatureConfig(**MEL)
    assert load_model_config({k: v for k, v in model.items() if k != "conv"}).conv == 0
    assert load_train_config({k: v for k, v in train.items() if k != "pitch_shift"}).pitch_shift == 0
    assert "ema" not in shipped_config()["train"] and "band_stats" not in shipped_config()["model"]


@pytest.mark.parametrize("section, key, value", [
    ("model", "band_stats", True), ("train", "ema", 0.99), ("train", "masks", 2), ("train", "transposed", 2),
    ("train", "colour", "red")])
def test_saved_configs_that_relied_on_a_retired_option_are_refused_by_name(section, key, value):
    from musicgen.critic.model import load_model_config
    from musicgen.critic.train import TrainConfig, load_train_config

    loaders = {"model": (load_model_config, ModelConfig()), "train": (load_train_config, TrainConfig())}
    load, cfg = loaders[section]
    with pytest.raises(MusicgenError, match=rf"{key}={value!r}.*v0\.1-experiments"):
        load({**asdict(cfg), key: value})


@pytest.mark.parametrize("make, match", [
    (lambda: FeatureConfig(scale="mel", key_shifts=1), "--key-shifts moves semitone bands"),
    (lambda: FeatureConfig(scale="bark"), "unknown band scale 'bark'"),
    (lambda: FeatureConfig(n_mels=87), "at least 88 bands"),
    (lambda: FeatureConfig(sample_rate=0), "--sample-rate must be a positive"),
    (lambda: FeatureConfig(n_fft=-1), "--n-fft must be a positive"),
    (lambda: FeatureConfig(hop=0), "--hop must be a positive"),
    (lambda: FeatureConfig(max_clips=0), "--max-clips must be a positive"),
    (lambda: FeatureConfig(key_shifts=-1), "--key-shifts is 0 or more"),
    (lambda: FeatureConfig(clip_sec=float("nan")), "--clip-sec must be positive"),
    (lambda: ModelConfig(n_hidden=0), "--n-hidden must be a positive"),
    (lambda: ModelConfig(dropout=1.0), "--dropout"),
    (lambda: ModelConfig(conv=-1), "--conv"),
    (lambda: ModelConfig(n_classes=1), "two classes"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_bad_feature_and_model_settings_are_refused_up_front(make, match):
    with pytest.raises(MusicgenError, match=match):
        make()


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 0, "--batch-size must be a positive"), ("steps_per_epoch", 0, "--steps-per-epoch"),
    ("max_epochs", 0, "--max-epochs"), ("patience", 0, "--patience"), ("workers", 0, "--workers"),
    ("lr", float("nan"), "--lr must be positive"), ("max_cpu_minutes", 0.0, "--max-cpu-minutes"),
    ("pitch_shift", -1, "--pitch-shift is 0 or more"), ("device", "tpu", "unknown device 'tpu'")])
def test_bad_training_settings_are_refused_up_front(field, value, match):
    from musicgen.critic.train import TrainConfig

    with pytest.raises(MusicgenError, match=match):
        TrainConfig(**{field: value})


# ---- inference -------------------------------------------------------------------------------

def test_classify_audio_gives_probabilities_over_the_classes(tiny, piece_audio):
    assert_valid(classify_audio(piece_audio, 44100, tiny))
    assert_valid(classify_audio(piece_audio.mean(axis=1), 44100, tiny))  # mono works too


def test_audio_shorter_than_a_clip_is_judged_whole(tiny):
    assert_valid(classify_audio(tone(3.0), SR, tiny))


def test_midi_file_and_score_are_rendered_and_classified(tiny, tmp_path):
    path = write_score(tiny_piece(bars=8), tmp_path / "piece.mid")
    from_file = classify_file(path, tiny)
    assert_valid(from_file)
    from_score = classify_score(tiny_piece(bars=8), tiny)
    for name, p in from_score["probabilities"].items():  # FluidSynth renders differ slightly run to run
        assert p == pytest.approx(from_file["probabilities"][name], abs=0.05)


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".ogg", ".flac"])
def test_audio_files_are_decoded_and_classified(tiny, piece_audio, tmp_path, suffix):
    path = tmp_path / f"piece{suffix}"
    if suffix == ".wav":
        write_wav(piece_audio, path)
    elif suffix == ".mp3":
        write_mp3(piece_audio, path)
    else:
        soundfile.write(str(path), piece_audio, 44100)
    result = classify_file(path, tiny)
    assert_valid(result)
    reference = classify_audio(piece_audio, 44100, tiny)["probabilities"]
    for name, p in result["probabilities"].items():  # lossy codecs barely move the answer
        assert p == pytest.approx(reference[name], abs=0.05)


@pytest.mark.parametrize("name, content, message", [
    ("text.wav", b"this is not audio\n" * 20, "could not be decoded"),
    ("text.mp3", b"this is not audio\n" * 20, "could not be decoded"),
    ("empty.wav", b"", "is empty"),
    ("empty.mid", b"", "not a MIDI file"),
    ("text.mid", b"not midi", "not a MIDI file"),
    ("notes.txt", b"hello", "cannot classify a .txt file"),
], ids=["text-as-wav", "text-as-mp3", "empty-wav", "empty-midi", "text-as-midi", "unknown-suffix"])
def test_junk_files_raise_a_one_line_user_error(tiny, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MusicgenError, match=message) as err:
        classify_file(path, tiny)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_user_error(tiny, tmp_path):
    with pytest.raises(MusicgenError, match="no such file"):
        classify_file(tmp_path / "nothing.wav", tiny)


@pytest.mark.parametrize("audio, message", [
    (np.zeros((5 * SR, 2), np.float32), "silent"),
    (np.full(5 * SR, 1e-6, np.float32), "silent"),
    (tone(1.0), "at least 2 s"),
    (np.full(5 * SR, np.nan, np.float32), "NaN"),
], ids=["zeros", "near-silence", "too-short", "nan"])
def test_silent_short_or_broken_audio_raises(tiny, audio, message):
    with pytest.raises(MusicgenError, match=message):
        classify_audio(audio, SR, tiny)


def test_silent_wav_file_raises(tiny, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros((5 * 44100, 2)), 44100)
    with pytest.raises(MusicgenError, match="silent"):
        classify_file(path, tiny)


def test_sounds_like_names_the_two_likeliest():
    result = {"probabilities": {"liszt": 0.21, "chopin": 0.62, "bach": 0.17}, "top": "chopin"}
    assert api.sounds_like(result) == "sounds like: chopin 62%, liszt 21%"


def test_cli_classify_prints_json_and_a_readable_line(tiny_folder, tmp_path, capsys):
    path = write_score(tiny_piece(bars=8), tmp_path / "piece.mid")
    assert run_cli(["classify", str(path), "--json", "--classifier", str(tiny_folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"probabilities", "top"} and set(printed["probabilities"]) == set(CLASSES)
    assert run_cli(["classify", str(path), "--classifier", str(tiny_folder)]) == 0
    assert capsys.readouterr().out.startswith("piece.mid: sounds like: ")
    assert run_cli(["classify", str(tmp_path / "nothing.wav"), "--classifier", str(tiny_folder)]) == 2


def test_cli_refuses_bad_recipes_before_rendering_anything(tiny_corpus, tmp_path):
    out = ["--data", str(tiny_corpus), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")]
    assert run_cli(["critic", "train", *out, "--scale", "mel"]) == 2  # the default --key-shifts 3 needs keys
    assert run_cli(["critic", "train", *out, "--scale", "mel", "--key-shifts", "0"]) == 2  # --pitch-shift 3
    assert run_cli(["critic", "crossval", *out, "--folds", "2"]) == 2
    assert run_cli(["critic", "train", *out, "--device", "tpu"]) == 2
    assert not (tmp_path / "cache").exists()


def test_missing_classifier_is_a_user_error(tmp_path):
    with pytest.raises(MusicgenError, match="no classifier in"):
        load_classifier(tmp_path)


def test_shipped_classifier_loads_and_lists_its_classes():
    clf = load_classifier()
    config = shipped_config()
    assert clf.classes == config["classes"] and len(clf.classes) >= 2
    members = clf.model.members if isinstance(clf.model, StyleEnsemble) else [clf.model]
    assert len(members) == config.get("members", 1)
    assert all(m.head.out_features == len(clf.classes) for m in members)
    assert "piano-midi.de" in config["attribution"]
    # a few seeds of a ~330k-parameter model; the whole repository stays small enough for a Space
    assert (CLASSIFIER_DIR / "model.safetensors").stat().st_size <= 8_000_000
    assert set(config["split"]) == {"train", "val", "test"}
    assert api.ASSET_DIR == CLASSIFIER_DIR


def test_conv_front_end_sees_one_step_per_stack_and_saves_and_loads_exactly(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(n_mels=88, stack=4, conv=3, n_proj=5, n_hidden=4, n_layer=1, n_classes=2)
    model = StyleGRU(cfg).eval()
    assert model.proj.in_features == 3 * 11  # 88 keys pooled by 2, then by 4
    steps = model.front(torch.zeros(1, 1, 10, 88))
    assert steps.shape == (1, 3, 2, 11)  # 10 frames make 2 whole steps of 4
    mel = torch.randn(2, 9, 88)
    fcfg = FeatureConfig(n_mels=88, n_fft=2048, scale="semitone")
    api.save_classifier(tmp_path, model, ["a", "b"], fcfg, {})
    loaded = load_classifier(tmp_path)
    assert loaded.features == fcfg and loaded.model.cfg == cfg
    assert torch.equal(loaded.model(mel), model(mel))


def test_key_shifts_average_the_clip_heard_in_neighbouring_keys():
    torch.manual_seed(0)
    mcfg = ModelConfig(n_mels=88, n_proj=8, n_hidden=8, n_layer=1, conv=2, n_classes=3)
    model = StyleGRU(mcfg).eval()
    fcfg = FeatureConfig(n_mels=88, n_fft=2048, scale="semitone", clip_sec=0.1, max_clips=2, key_shifts=0)
    mel = np.random.default_rng(0).normal(-40, 10, (3 * fcfg.clip_frames, 88)).astype(np.float32)
    plain = Classifier(model, ["a", "b", "c"], fcfg, {}).clip_probabilities(mel)
    shifted = Classifier(model, ["a", "b", "c"], fcfg.with_test_time(fcfg.max_clips, 2), {})
    views = [Classifier(model, ["a", "b", "c"], fcfg, {}).clip_probabilities(shift_keys(mel, k))
             for k in range(-2, 3)]
    assert plain.shape == (2, 3) and np.allclose(shifted.clip_probabilities(mel), np.mean(views, axis=0))
    with pytest.raises(MusicgenError, match="semitone"):
        FeatureConfig(scale="mel", key_shifts=1)


# ---- cross-validation ------------------------------------------------------------------------

def test_folds_are_stratified_by_composer_and_fixed_by_the_paths():
    from musicgen.critic.crossval import assign_folds

    paths = [f"{c}/{i}.mid" for c in ("a", "b") for i in range(7)]
    folds = assign_folds(paths, 3)
    assert folds == assign_folds(list(reversed(paths)), 3)
    for c in ("a", "b"):
        assert sorted(Counter(f for p, f in folds.items() if p.startswith(c)).values()) == [2, 2, 3]


def test_exact_binomial_and_mcnemar_p_values():
    from musicgen.critic.crossval import binomial_two_sided, mcnemar

    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(1, 10) == pytest.approx(22 / 1024)
    assert binomial_two_sided(5, 10) == pytest.approx(1.0)
    assert binomial_two_sided(3, 9, 1 / 9) == pytest.approx(1 - sum(
        math.comb(9, i) * (1 / 9) ** i * (8 / 9) ** (9 - i) for i in range(3)))
    gru = [True, True, True, False, True, False]
    base = [False, False, True, False, True, True]
    assert mcnemar(gru, base) == {"only_first": 2, "only_second": 1, "p_value": pytest.approx(1.0)}


def test_crossval_holds_out_every_piece_once_for_both_models(tiny_corpus, tmp_path):
    from musicgen.critic.crossval import crossval
    from musicgen.critic.train import TrainConfig

    tcfg = TrainConfig(data=str(tiny_corpus), out=str(tmp_path), cache=str(tmp_path / "cache"), min_pieces=8,
                       batch_size=4, steps_per_epoch=2, max_epochs=1, baseline_clips=2, pitch_shift=0)
    mel = FeatureConfig(**MEL)
    report = crossval(tcfg, ModelConfig(conv=0, **TINY), mel, folds=4)
    rows = report["per_piece"]
    assert sorted(r["path"] for r in rows) == sorted(f"{c}/piece{i}.mid" for c in ("alpha", "beta")
                                                     for i in range(8))
    assert Counter(r["fold"] for r in rows) == {0: 4, 1: 4, 2: 4, 3: 4}
    probs = np.array([r["gru_clip_probs"] for r in rows])  # kept so that seeds can be pooled
    assert probs.shape == (16, 2, 2) and np.allclose(probs.sum(axis=2), 1, atol=1e-4)
    for name in ("gru", "baseline"):
        assert report[name]["piece_hits"] == sum(r[name] == r["true"] for r in rows)
        assert report[name]["pieces"] == 16 and report[name]["clips"] == 32  # two 10 s clips per 16 s piece
    only_gru = sum(r["gru"] == r["true"] != r["baseline"] for r in rows)
    assert report["gru_vs_baseline"]["only_first"] == only_gru
    assert report["chance"]["majority_piece_accuracy"] == 0.5
    # the fold models are kept: judged again with the same settings they give the same answers
    again = crossval(tcfg, ModelConfig(), mel, folds=4, trained=tmp_path)
    assert again["per_piece"] == rows and again["cpu_minutes_per_fold"] == [0.0] * 4
    (tmp_path / "crossval.json").write_text(json.dumps(report))
    argv = ["critic", "crossval", "--rescore", str(tmp_path), "--out", str(tmp_path / "fewer"),
            "--max-clips", "1", "--key-shifts", "0"]
    assert run_cli(argv) == 0
    fewer = json.loads((tmp_path / "fewer" / "crossval.json").read_text())
    assert fewer["gru"]["clips"] == fewer["baseline"]["clips"] == 16 and fewer["trained"] == str(tmp_path)
    assert run_cli(argv + ["--key-shifts", "1"]) == 2  # these are mel bands: nothing to shift
    alone = crossval(tcfg, ModelConfig(), mel, folds=4, gru=False)
    assert alone["gru"] is None and alone["baseline"] == report["baseline"]
    assert [r["baseline"] for r in alone["per_piece"]] == [r["baseline"] for r in rows]
    gru_alone = crossval(tcfg, ModelConfig(), mel, folds=4, trained=tmp_path, with_baseline=False)
    assert gru_alone["baseline"] is None and gru_alone["gru"] == report["gru"]
    assert [r["gru"] for r in gru_alone["per_piece"]] == [r["gru"] for r in rows]
    assert all("baseline" not in r for r in gru_alone["per_piece"]) and "gru_vs_baseline" not in gru_alone


def test_crossval_refit_trains_again_on_train_and_val_for_the_chosen_epochs(tiny_corpus, tmp_path, capsys):
    from musicgen.critic.crossval import crossval
    from musicgen.critic.train import TrainConfig

    tcfg = TrainConfig(data=str(tiny_corpus), out=str(tmp_path), cache=str(tmp_path / "cache"), min_pieces=8,
                       batch_size=4, steps_per_epoch=2, max_epochs=2, baseline_clips=2, refit=True,
                       pitch_shift=0)
    report = crossval(tcfg, ModelConfig(conv=0, **TINY), FeatureConfig(**MEL), folds=4)
    assert report["gru"]["pieces"] == report["baseline"]["pieces"] == 16
    refits = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1/")]
    assert len(refits) == 4  # one refit per fold, for the 1 or 2 epochs early stopping chose


def test_pooled_runs_average_each_clips_probabilities(tmp_path):
    from musicgen.critic.crossval import ensemble

    def run(name, probs_a, probs_b):
        rows = [{"path": f"{c}/1.mid", "fold": i, "true": c, "gru": c, "baseline": "b", "gru_clip_probs": pr}
                for i, (c, pr) in enumerate([("a", probs_a), ("b", probs_b)])]
        report = {"classes": ["a", "b"], "folds": 2, "per_piece": rows, "gru": {"piece_hits": 0},
                  "baseline": {"piece_hits": 1}, "chance": {}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "crossval.json").write_text(json.dumps(report))
        return tmp_path / name

    # piece a, clips averaged: (0.7, 0.3) and (0.2, 0.8), piece mean (0.45, 0.55): b, wrong
    # piece b: (0.9, 0.1) and (0.05, 0.95) average to (0.475, 0.525): b, right (run 1 alone says a)
    r1 = run("s1", [[0.6, 0.4], [0.0, 1.0]], [[0.9, 0.1]])
    r2 = run("s2", [[0.8, 0.2], [0.4, 0.6]], [[0.05, 0.95]])
    pooled = ensemble([r1, r2])
    assert [r["gru"] for r in pooled["per_piece"]] == ["b", "b"]
    assert pooled["gru"]["piece_hits"] == 1 and pooled["gru"]["clips"] == 3
    assert pooled["gru"]["clip_accuracy"] == pytest.approx(2 / 3)
    assert pooled["gru_vs_baseline"] == {"only_first": 0, "only_second": 0, "p_value": pytest.approx(1.0)}
    other = run("s3", [[1.0, 0.0]], [[0.5, 0.5]])  # a different number of clips
    with pytest.raises(MusicgenError, match="differ"):
        ensemble([r1, other])
    report = json.loads((r2 / "crossval.json").read_text())
    rows = [{k: v for k, v in x.items() if k != "baseline"} for x in report["per_piece"]]
    (r2 / "crossval.json").write_text(json.dumps({**report, "baseline": None, "per_piece": rows}))  # gru-only
    alone = ensemble([r1, r2])  # pooled alike, with no baseline to compare
    assert alone["gru"] == pooled["gru"] and alone["baseline"] is None and "gru_vs_baseline" not in alone
    assert all("baseline" not in r for r in alone["per_piece"])


# ---- the generator's style fidelity ----------------------------------------------------------

def test_steering_test_keeps_the_classifiers_leanings():
    from musicgen.fidelity import steering_test

    requested = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    # Everything heard as "a": 4 hits, and every shuffle gives the same 4, so no evidence at all.
    assert steering_test(requested, ["a"] * 12, n_perm=200) == (4.0, 1.0)
    # Heard exactly as requested: 12 hits, which no shuffle of 200 reaches (chance 4!^3/12! each).
    expected, p = steering_test(requested, requested, n_perm=200)
    assert 3.0 < expected < 5.0 and p == 1 / 201


def test_style_fidelity_reports_every_piece_and_the_shuffle_test(tiny, tiny_run):
    from musicgen.fidelity import format_fidelity, style_fidelity
    from musicgen.sample import Generator

    report = style_fidelity(Generator(tiny_run / "best", "cpu"), tiny, n=2, bars=2)
    pieces = report["pieces"]
    assert [p["requested"] for p in pieces] == ["alpha", "alpha", "beta", "beta"]  # the shared classes
    assert all(p["heard"] in CLASSES for p in pieces)
    hits = sum(p["requested"] == p["heard"] for p in pieces)
    assert report["generated"] == (hits, 4) and sum(r["generated_hits"] for r in report["rows"]) == hits
    assert 0 < report["steering_p"] <= 1 and 0 <= report["shuffled_expected_hits"] <= 4
    assert f"{hits}/4" in format_fidelity(report) and "shuffles" in format_fidelity(report)


# ---- training and retesting ------------------------------------------------------------------

def test_semitone_conv_pitch_shifted_training_runs_and_mel_refuses_pitch_shift(tiny_corpus, tmp_path):
    from musicgen.critic.corpus import load_pieces
    from musicgen.critic.train import TrainConfig, fit

    tcfg = TrainConfig(pitch_shift=2, max_epochs=1, steps_per_epoch=2, batch_size=4)
    mcfg = ModelConfig(conv=2, **TINY)
    fcfg = FeatureConfig(**SEMI)
    classes, pieces, _ = load_pieces(tiny_corpus, 2, fcfg, tmp_path / "cache")
    assert pieces[0].mel.shape[1] == 88
    clf, history, _ = fit(tcfg, mcfg, fcfg, classes, pieces, pieces)
    assert len(history) == 1 and clf.model.front is not None
    assert clf.clip_probabilities(pieces[0].mel.astype(np.float32)).sum(axis=1) == pytest.approx(1.0)
    mel = FeatureConfig(**MEL)
    classes, pieces, _ = load_pieces(tiny_corpus, 2, mel, tmp_path / "cache")
    with pytest.raises(MusicgenError, match="--scale semitone"):
        fit(tcfg, mcfg, mel, classes, pieces, pieces)


def test_retest_judges_the_held_out_pieces_again_with_new_test_time_settings(tiny_corpus, tmp_path):
    from safetensors.torch import load_file

    from musicgen.critic.retest import retest_classifier
    from musicgen.critic.train import TrainConfig, train_classifier

    tcfg = TrainConfig(data=str(tiny_corpus), out=str(tmp_path / "run"), cache=str(tmp_path / "cache"),
                       min_pieces=8, batch_size=4, steps_per_epoch=2, max_epochs=1, baseline_clips=2)
    fcfg = FeatureConfig(**SEMI)
    run = train_classifier(tcfg, ModelConfig(conv=2, **TINY), fcfg)
    before = json.loads((run / "best" / "config.json").read_text())
    assert before["metrics"]["test"]["clips"] == 2 * before["metrics"]["test"]["pieces"]  # 16 s pieces
    out = retest_classifier([run / "best"], tmp_path / "again", "", tcfg.cache, max_clips=1, key_shifts=2)
    after = json.loads((out / "best" / "config.json").read_text())
    assert after["features"] == {**before["features"], "max_clips": 1, "key_shifts": 2}
    assert after["split"] == before["split"] and after["retest"] == "--max-clips 1 --key-shifts 2"
    for name in ("test", "baseline_logreg_mean_std_logmel"):
        assert after["metrics"][name]["clips"] == after["metrics"][name]["pieces"] > 0
    a, b = (load_file(str(f / "best" / "model.safetensors")) for f in (run, out))
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = tmp_path / "other"
    for i in range(8):
        write_score(tiny_piece(shift=i), other / "alpha" / f"x{i}.mid")
        write_score(tiny_piece(shift=5 + i), other / "beta" / f"x{i}.mid")
    with pytest.raises(MusicgenError, match="not the ones"):
        retest_classifier([run / "best"], tmp_path / "bad", str(other), tcfg.cache, max_clips=1, key_shifts=0)


def test_seeds_retested_together_are_one_classifier_averaging_their_probabilities(tiny_corpus, tmp_path):
    from musicgen.critic.retest import retest_classifier
    from musicgen.critic.train import TrainConfig, train_classifier

    fcfg = FeatureConfig(**SEMI)
    mcfg = ModelConfig(conv=2, **TINY)
    runs = []
    for seed in (0, 1):
        tcfg = TrainConfig(data=str(tiny_corpus), out=str(tmp_path / f"s{seed}"), seed=seed,
                           cache=str(tmp_path / "cache"), min_pieces=8, batch_size=4, steps_per_epoch=2,
                           max_epochs=1, baseline_clips=2)
        runs.append(train_classifier(tcfg, mcfg, fcfg) / "best")
    out = retest_classifier(runs, tmp_path / "both", "", str(tmp_path / "cache"), max_clips=2, key_shifts=1)
    both = load_classifier(out / "best")
    assert both.config["members"] == 2 and both.config["member_seeds"] == [0, 1]
    assert both.config["member_epochs"] == [1, 1] and "history" not in both.config
    assert both.config["params"] == sum(p.numel() for p in both.model.parameters())
    assert isinstance(both.model, StyleEnsemble)
    mel = np.random.default_rng(0).uniform(-80, 0, (900, 88)).astype(np.float32)
    members = [Classifier(load_classifier(r).model, both.classes, both.features, {}) for r in runs]
    mean = np.mean([m.clip_probabilities(mel) for m in members], axis=0)
    assert both.clip_probabilities(mel) == pytest.approx(mean, abs=1e-6)
    assert both.config["metrics"]["test"]["clips"] == 2 * both.config["metrics"]["test"]["pieces"]
    with pytest.raises(MusicgenError, match="already an ensemble"):
        retest_classifier([out / "best", runs[0]], tmp_path / "x", "", str(tmp_path / "cache"), 1, 0)
    tcfg = TrainConfig(data=str(tiny_corpus), out=str(tmp_path / "wide"), cache=str(tmp_path / "cache"),
                       min_pieces=8, batch_size=4, steps_per_epoch=2, max_epochs=1, baseline_clips=2)
    wide = train_classifier(tcfg, ModelConfig(n_proj=8, n_hidden=12, n_layer=1, conv=2), fcfg) / "best"
    with pytest.raises(MusicgenError, match="differs"):
        retest_classifier([runs[0], wide], tmp_path / "y", "", str(tmp_path / "cache"), 1, 0)


def test_rendering_in_worker_processes_fills_the_cache_with_the_same_features(tiny_corpus, tmp_path):
    from musicgen.critic.corpus import load_pieces, render_in_parallel

    fcfg = FeatureConfig(**MEL)
    _, one, _ = load_pieces(tiny_corpus, 8, fcfg, tmp_path / "one")
    _, two, _ = load_pieces(tiny_corpus, 8, fcfg, tmp_path / "two", workers=2)
    assert [p.path for p in one] == [p.path for p in two]
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a.mel, b.mel)
    render_in_parallel([tiny_corpus / p.path for p in one], fcfg, tmp_path / "three", workers=2)  # no loading
    files = {name: {f.name for f in (tmp_path / name).glob("*.npy")} for name in ("one", "two", "three")}
    assert files["one"] == files["two"] == files["three"]
