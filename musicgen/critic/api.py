"""Which composer a piano recording sounds like: load a saved critic and judge audio, MIDI or scores.

A saved critic is a folder: model.safetensors (weights, feature mean/std included) and
config.json (classes, feature settings, split, held-out metrics, attribution). No pickles.

A piece is judged on up to `max_clips` evenly spaced 10 s clips (each also heard moved
`key_shifts` keys up and down); its probabilities are the mean of the clips' (a soft vote),
exactly as the held-out piece accuracy was measured.
"""

from __future__ import annotations  # symusic.Score is a factory, not a type, in hints

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from musicgen.critic.features import (
    MAX_SECONDS,
    FeatureConfig,
    clip_starts,
    load_features,
    log_mel,
    prepare_audio,
    shift_keys,
)
from musicgen.critic.model import StyleEnsemble, StyleGRU, load_model_config
from musicgen.errors import MusicgenError
from musicgen.resources import CLASSIFIER_DIR
from musicgen.tokenizer import MIDI_SUFFIXES, read_midi

ASSET_DIR = CLASSIFIER_DIR  # the shipped critic
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac")
MAX_AUDIO_BYTES = 200_000_000


@dataclass
class Classifier:
    """A loaded classifier: the model, its class names and the feature settings it was trained on."""

    model: StyleGRU | StyleEnsemble
    classes: list[str]
    features: FeatureConfig
    config: dict

    @torch.no_grad()
    def clip_probabilities(self, mel: np.ndarray) -> np.ndarray:
        """(n_clips, n_classes) probabilities of the evenly spaced clips of one piece's log-mel."""
        n = self.features.clip_frames
        starts = clip_starts(len(mel), n, self.features.max_clips)
        clips = np.stack([mel[s:s + n] for s in starts]).astype(np.float32)  # (N, T, M)
        k = self.features.key_shifts
        views = [shift_keys(clips, j) for j in range(-k, k + 1)] if k else [clips]
        device = next(self.model.parameters()).device  # CPU, or CUDA while training there
        probs = [torch.softmax(self.model(torch.from_numpy(v).to(device)), dim=-1).cpu().numpy()
                 for v in views]
        return np.mean(probs, axis=0)

    def result(self, mel: np.ndarray) -> dict:
        """{"probabilities": {class: p} (likeliest first), "top": class} of one piece's log-mel."""
        probs = self.clip_probabilities(mel).mean(axis=0)
        order = np.argsort(-probs, kind="stable")
        return {"probabilities": {self.classes[i]: float(probs[i]) for i in order},
                "top": self.classes[int(order[0])]}


def save_classifier(folder: str | Path, model: StyleGRU | StyleEnsemble, classes: list[str],
                    features: FeatureConfig, meta: dict) -> Path:
    """Write model.safetensors and config.json (classes, features, model settings, members, meta)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    members = len(model.members) if isinstance(model, StyleEnsemble) else 1
    config = {"classes": list(classes), "features": asdict(features), "model": asdict(model.cfg),
              **meta, "members": members}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


@functools.lru_cache(maxsize=4)
def _load(folder: Path) -> Classifier:
    from safetensors.torch import load_file

    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise MusicgenError(f"no classifier in {folder} (expected model.safetensors and config.json); "
                            "train one with `musicgen critic train --data DIR`")
    config = json.loads((folder / "config.json").read_text())
    cfg, members = load_model_config(config["model"]), config.get("members", 1)
    model = StyleEnsemble([StyleGRU(cfg) for _ in range(members)]) if members > 1 else StyleGRU(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return Classifier(model, list(config["classes"]), load_features(config["features"]), config)


def load_classifier(folder: str | Path = CLASSIFIER_DIR) -> Classifier:
    """The classifier saved in folder, loaded once per folder."""
    return _load(Path(folder).resolve())


# ---- inference -------------------------------------------------------------------------------

def classify_audio(audio: np.ndarray, sample_rate: int, classifier: Classifier | None = None) -> dict:
    """{"probabilities": {class: p}, "top": class} of audio shaped (samples,) or (samples, channels)."""
    clf = classifier or load_classifier()
    mono = prepare_audio(audio, sample_rate, clf.features)
    return clf.result(log_mel(mono, clf.features))


def classify_score(score, classifier: Classifier | None = None) -> dict:
    """Render a symusic.Score with the shipped piano soundfont (as in training) and classify it."""
    from musicgen.render.audio import render_audio

    clf = classifier or load_classifier()
    audio = render_audio(score, sample_rate=clf.features.sample_rate)
    return classify_audio(audio, clf.features.sample_rate, clf)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the sample rate of a wav/mp3/ogg/flac file (first 20 min)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise MusicgenError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise MusicgenError(f"{path.name} is empty")
    if size > MAX_AUDIO_BYTES:
        raise MusicgenError(f"{path.name} is larger than {MAX_AUDIO_BYTES // 1_000_000} MB")
    try:
        with soundfile.SoundFile(str(path)) as f:
            sample_rate = f.samplerate
            audio = f.read(int(MAX_SECONDS * sample_rate), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError) as err:  # libsndfile's errors are RuntimeErrors
        # libsndfile's own reasons mislead ("not a regular file" for a text file named .mp3)
        raise MusicgenError(f"{path.name} could not be decoded as {path.suffix[1:] or 'audio'}; "
                            "is it really a sound file?") from err
    if len(audio) == 0:
        raise MusicgenError(f"{path.name} holds no audio samples")
    return audio, sample_rate


def classify_file(path: str | Path, classifier: Classifier | None = None) -> dict:
    """Classify a .wav/.mp3/.ogg/.flac recording, or a .mid/.midi file rendered first."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return classify_score(read_midi(path), classifier)
    if suffix not in AUDIO_SUFFIXES:
        raise MusicgenError(f"cannot classify a {suffix or 'suffix-less'} file; give one of "
                            f"{', '.join(AUDIO_SUFFIXES + MIDI_SUFFIXES)}")
    audio, sample_rate = read_audio(path)
    return classify_audio(audio, sample_rate, classifier)


def sounds_like(result: dict, k: int = 2) -> str:
    """One line for people: 'sounds like: chopin 62%, liszt 21%' (the k likeliest classes)."""
    best = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:k]
    return "sounds like: " + ", ".join(f"{name} {round(100 * p)}%" for name, p in best)
