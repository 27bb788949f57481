"""Configs: defaults are what ships, bad values are refused up front with the flag's name, and
configs saved by earlier versions still load."""

import json

import pytest

from musicgen.checkpoint import DEFAULT_CHECKPOINT
from musicgen.cli import main
from musicgen.config import restore
from musicgen.errors import MusicgenError
from musicgen.evaluate import EvalConfig
from musicgen.model import RETIRED, ModelConfig
from musicgen.sample import SampleConfig
from musicgen.train import TrainConfig


def test_model_defaults_are_the_shipped_model():
    shipped = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["model"]
    defaults = vars(ModelConfig())
    assert {k: shipped[k] for k in defaults if k != "vocab_size"} == \
        {k: v for k, v in defaults.items() if k != "vocab_size"}


def test_train_defaults_are_the_shipped_first_stage():
    shipped = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["train"]
    # the shipped run was resumed twice with new corpus weights and rates (README "Training"); the
    # rest is the default
    differs = {k for k, v in vars(TrainConfig()).items() if shipped.get(k, v) != v}  # newer fields: off
    assert differs == {"data", "out", "lr", "max_minutes", "resume", "corpus_weights"}


def test_a_config_saved_with_retired_options_at_their_neutral_value_loads():
    old = {**vars(ModelConfig()), "arch": "gru", "window": 40}
    assert restore(ModelConfig, old, RETIRED) == ModelConfig()


def test_a_config_that_relied_on_a_retired_option_is_refused_by_name():
    with pytest.raises(MusicgenError, match=r"arch='bigru'.*v0\.1-experiments"):
        restore(ModelConfig, {"arch": "bigru"}, RETIRED)
    with pytest.raises(MusicgenError, match="colour"):
        restore(ModelConfig, {"colour": "red"}, RETIRED)


@pytest.mark.parametrize("make, flag", [
    (lambda: ModelConfig(n_hidden=0), "--n-hidden"),
    (lambda: ModelConfig(dropout=1.0), "--dropout"),
    (lambda: TrainConfig(seq_len=0), "--seq-len"),
    (lambda: TrainConfig(lr=float("nan")), "--lr"),
    (lambda: TrainConfig(style_dropout=2.0), "--style-dropout"),
    (lambda: TrainConfig(device="tpu"), "device"),
    (lambda: EvalConfig(ngram_order=9), "--ngram-order"),
    (lambda: EvalConfig(split="train"), "--split"),
    (lambda: EvalConfig(temperature=-1), "temperature"),
    (lambda: SampleConfig(bars=0), "bars"),
    (lambda: SampleConfig(top_p=float("nan")), "top-p"),
    (lambda: SampleConfig(tempo=1000), "tempo"),
], ids=["n-hidden", "dropout", "seq-len", "lr-nan", "style-dropout", "device", "ngram-order", "split",
        "eval-temperature", "bars", "top-p-nan", "tempo"])
def test_bad_values_are_refused_when_the_config_is_made(make, flag):
    with pytest.raises(MusicgenError, match=flag):
        make()


def test_evaluate_refuses_a_bad_order_before_reading_anything(capsys, monkeypatch):
    import musicgen.evaluate

    def never(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the flags were checked")

    monkeypatch.setattr(musicgen.evaluate, "load_checkpoint", never)
    assert main(["evaluate", "--ngram-order", "9", "--data", "/nonexistent"]) == 2
    assert "--ngram-order must be between 2 and 7" in capsys.readouterr().err


def test_retired_train_flags_are_unknown(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--arch", "bigru"])
    assert stop.value.code == 2 and "unrecognized arguments: --arch" in capsys.readouterr().err
