"""Which composer a piano recording sounds like: log band power -> bidirectional GRU -> softmax.

Bands are Slaney mel bands or one per piano key (`FeatureConfig.scale`); the shipped model uses keys.

The runtime half of the audio style classifier: features, model, loading, inference, and the
`classify` subcommand. classify_data.py builds the training clips, trains and evaluates.
A saved classifier is a folder: model.safetensors (weights, feature mean/std included) and
config.json (classes, feature settings, split, held-out metrics, attribution). No pickles.

A piece is judged on up to `max_clips` evenly spaced 10 s clips (each also heard moved
`key_shifts` keys up and down); its probabilities are the mean of the clips' (a soft vote),
exactly as the held-out piece accuracy was measured.
"""

from __future__ import annotations  # symusic.Score is a factory, not a type, in hints

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import symusic
import torch
from torch import nn

from musicgen.errors import MusicgenError
from musicgen.resources import CLASSIFIER_DIR
from musicgen.tokenizer import MIDI_SUFFIXES

ASSET_DIR = CLASSIFIER_DIR
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac")
MIN_SECONDS = 2.0  # a shorter sound holds too few notes to say anything about style
MAX_SECONDS = 1200.0  # longer audio is judged on its first 20 minutes (clips are spread over it)
MAX_AUDIO_BYTES = 200_000_000
SILENCE_PEAK = 1e-4  # -80 dBFS: nothing audible, and normalising it would only amplify noise
AMIN = 1e-5  # power floor before the log: about 70 dB below a loud chord at our loudness target
FLOOR_DB = 10 * math.log10(AMIN)  # what silence looks like in the features: pads short pieces


@dataclass
class FeatureConfig:
    sample_rate: int = 16000  # piano partials above 8 kHz say little about style; renders 1.4x faster
    n_fft: int = 1024  # 64 ms Hann window
    hop: int = 368  # 23 ms between frames
    n_mels: int = 64  # enough bands to see register and texture, few enough to learn from ~170 pieces
    scale: str = "mel"  # "mel": Slaney mel bands; "semitone": one band per piano key (n_mels 88)
    fmin: float = 27.5  # A0, the lowest piano key
    fmax: float = 8000.0  # the Nyquist frequency at 16 kHz
    clip_sec: float = 10.0  # a few bars: long enough for phrasing, short enough to get many per piece
    max_clips: int = 8  # clips judged per piece, evenly spaced, in validation and tests (shipped: 32)
    key_shifts: int = 0  # semitone bands: also judge each clip moved 1..k keys up and down, averaged

    def __post_init__(self):
        if self.key_shifts and self.scale != "semitone":
            raise MusicgenError("--key-shifts moves semitone bands; it needs --scale semitone --n-mels 88")

    @property
    def clip_frames(self) -> int:
        """Frames in one clip."""
        return round(self.clip_sec * self.sample_rate / self.hop)


@dataclass
class ModelConfig:
    n_mels: int = 64  # input bands (FeatureConfig.n_mels)
    stack: int = 4  # frames joined per GRU step (93 ms): 4x fewer sequential steps on a CPU
    n_proj: int = 128  # width of the per-step projection fed to the GRU
    n_hidden: int = 96  # GRU state per direction
    n_layer: int = 2
    dropout: float = 0.3  # ~170 training pieces: the model overfits them without it
    conv: int = 0  # >0: channels of a convolutional front end over (time, band) instead of stacking
    band_stats: bool = False  # also pool each band's mean and std over the clip: the baseline's features
    n_classes: int = 2


# ---- features --------------------------------------------------------------------------------

def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """The inverse of hz_to_mel."""
    mel = np.asarray(mel, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


def triangles(fft_hz: np.ndarray, lower: np.ndarray, centre: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(bands, bins) triangles rising from `lower` to 1 at `centre` and falling to 0 at `upper` (Hz)."""
    rising = (fft_hz[None, :] - lower[:, None]) / (centre - lower)[:, None]
    falling = (upper[:, None] - fft_hz[None, :]) / (upper - centre)[:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalised: librosa.filters.mel's defaults."""
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    weights = triangles(fft_hz, edges_hz[:-2], edges_hz[1:-1], edges_hz[2:])
    # equal area: a wide band (high up) does not get louder for spanning more FFT bins
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


PIANO_KEYS = 88  # A0 (MIDI 21) .. C8 (MIDI 108)


@functools.lru_cache(maxsize=8)
def semitone_filterbank(sample_rate: int, n_fft: int, n_bands: int = PIANO_KEYS) -> np.ndarray:
    """(n_bands, n_fft // 2 + 1) triangles, one per piano key (A0 up; past C8 the semitones go on
    above the keyboard, where only partials sound), peaking at 1 on the key's frequency and
    reaching zero on its neighbours' (or one FFT bin away where keys are closer than a bin).

    Peak-normalised, so a partial counts fully in the key it sits on, whatever the band's width.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    bin_hz = fft_hz[1]
    keys = np.arange(20, 22 + n_bands)  # each band's neighbours: with 88 bands, 20 and 109 bound A0 and C8
    edges_hz = 440.0 * 2.0 ** ((keys - 69) / 12.0)
    if edges_hz[-1] > sample_rate / 2:
        raise MusicgenError(f"a sample rate of {sample_rate} Hz cannot hold the top band ({n_bands} from A0)")
    centre = edges_hz[1:-1]
    lower = np.minimum(edges_hz[:-2], centre - bin_hz)  # low keys: wider than a bin, so never empty
    upper = np.maximum(edges_hz[2:], centre + bin_hz)
    return triangles(fft_hz, lower, centre, upper).astype(np.float32)


def filterbank(cfg: FeatureConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) band weights of the configured scale."""
    if cfg.scale == "mel":
        return mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    if cfg.scale == "semitone":
        if cfg.n_mels < PIANO_KEYS:
            raise MusicgenError(f"the semitone scale has at least {PIANO_KEYS} bands, one per key; "
                                "pass --n-mels 88 (or more, for semitones above C8)")
        return semitone_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)
    raise MusicgenError(f"unknown band scale {cfg.scale!r}: use mel or semitone")


def log_mel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(frames, n_mels) float32 log band power in dB (mel or semitone bands) of mono audio at
    cfg.sample_rate."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    spec = torch.stft(x, cfg.n_fft, cfg.hop, window=torch.hann_window(cfg.n_fft), center=True,
                      return_complex=True)  # (F, T)
    fb = torch.from_numpy(filterbank(cfg))
    mel = fb @ spec.abs().square()  # (M, T)
    return (10.0 * torch.log10(mel.clamp_min(AMIN))).T.contiguous().numpy()


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of mono audio: cut (or zero-pad) its spectrum to the new Nyquist."""
    if sr_in == sr_out:
        return audio
    n_out = max(1, round(len(audio) * sr_out / sr_in))
    spec = torch.fft.rfft(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
    out = torch.fft.irfft(spec, n=n_out) * (n_out / len(audio))  # irfft truncates or pads the bins
    return out.numpy().astype(np.float32)


def clip_starts(n_frames: int, clip_frames: int, max_clips: int) -> list[int]:
    """Start frames of up to max_clips evenly spaced clips that together cover the piece."""
    if n_frames <= clip_frames:
        return [0]
    n = min(max_clips, math.ceil(n_frames / clip_frames))
    return [int(s) for s in np.linspace(0, n_frames - clip_frames, n).round()]


def shift_keys(x: np.ndarray, k: int) -> np.ndarray:
    """Semitone-band frames (..., bands) moved k keys up (k > 0) or down: the audio transposed,
    near enough (partials above C8 are not in the bands), with silence coming in at the edge."""
    out = np.full_like(x, FLOOR_DB)
    if k >= 0:
        out[..., k:] = x[..., : x.shape[-1] - k]
    else:
        out[..., :k] = x[..., -k:]
    return out


def prepare_audio(audio: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """Mono float32 at cfg.sample_rate with the renderer's loudness; junk raises MusicgenError."""
    from musicgen.render.audio import normalise_loudness  # the renderer's rule: uploads match training

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[0] < audio.shape[1]:
        raise MusicgenError(f"expected audio shaped (samples,) or (samples, channels), got {audio.shape}")
    if sample_rate < 4000:
        raise MusicgenError(f"a sample rate of {sample_rate} Hz is too low for music")
    seconds = audio.shape[0] / sample_rate
    if seconds < MIN_SECONDS:
        raise MusicgenError(f"the audio is {seconds:.1f} s long; at least {MIN_SECONDS:.0f} s are needed")
    audio = audio[: int(MAX_SECONDS * sample_rate)]
    if not np.isfinite(audio).all():
        raise MusicgenError("the audio holds NaN or infinite samples")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise MusicgenError("the audio is silent")
    mono = normalise_loudness(audio).mean(axis=1)
    return resample(mono, sample_rate, cfg.sample_rate)


# ---- model -----------------------------------------------------------------------------------

class StyleGRU(nn.Module):
    """Standardised log-mel -> stacked frames (or a small convolution) -> bidirectional GRU ->
    mean+max pool -> class logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # training-set statistics per band, saved with the weights so a checkpoint is self-contained
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.front = None
        width = cfg.n_mels * cfg.stack
        if cfg.conv:
            # an octave wide and one GRU step long: the same chord or interval shape is one
            # feature wherever it sits on the keyboard, learnt once instead of per band
            c = cfg.conv
            self.front = nn.Sequential(
                nn.Conv2d(1, c, (cfg.stack, 13), stride=(cfg.stack, 1), padding=(0, 6)), nn.ReLU(),
                nn.MaxPool2d((1, 2)), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 4)))
            width = c * (cfg.n_mels // 2 // 4)
        self.proj = nn.Linear(width, cfg.n_proj)
        self.gru = nn.GRU(cfg.n_proj, cfg.n_hidden, cfg.n_layer, batch_first=True, bidirectional=True,
                          dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(4 * cfg.n_hidden + (2 * cfg.n_mels if cfg.band_stats else 0), cfg.n_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) from log-mel clips (B, T, M)."""
        x = bands = (mel - self.feat_mean) / self.feat_std
        B, T, M = x.shape
        steps = max(1, T // self.cfg.stack)
        if T < self.cfg.stack:  # a clip shorter than one step: pad it to one
            x = nn.functional.pad(x, (0, 0, 0, self.cfg.stack - T), value=float(x.min()))
        x = x[:, : steps * self.cfg.stack]
        if self.front is None:
            x = x.reshape(B, steps, M * self.cfg.stack)  # (B, S, M*stack)
        else:
            x = self.front(x[:, None]).transpose(1, 2).flatten(2)  # (B, 1, T, M) -> (B, S, c*M/8)
        x = self.drop(torch.relu(self.proj(x)))  # (B, S, P)
        h, _ = self.gru(x)  # (B, S, 2H)
        parts = [h.mean(dim=1), h.amax(dim=1)]  # (B, 2H) each
        if self.cfg.band_stats:
            parts += [bands.mean(dim=1), bands.std(dim=1, correction=0)]  # (B, M) each
        pooled = torch.cat(parts, dim=-1)
        return self.head(self.drop(pooled))


class StyleEnsemble(nn.Module):
    """Several StyleGRUs (seeds of one recipe) heard as one: their class probabilities averaged.

    A single model's choice swings by a tenth of the pieces from seed to seed; the average of a few
    is steadier and better (docs/CLASSIFIER.md).
    """

    def __init__(self, members: list[StyleGRU]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log of the members' mean probabilities (B, C): a softmax of it gives that mean."""
        logp = torch.stack([m(mel).log_softmax(dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


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
                            "train one with `python -m musicgen.classify_data train`")
    config = json.loads((folder / "config.json").read_text())
    cfg, members = ModelConfig(**config["model"]), config.get("members", 1)
    model = StyleEnsemble([StyleGRU(cfg) for _ in range(members)]) if members > 1 else StyleGRU(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return Classifier(model, list(config["classes"]), FeatureConfig(**config["features"]), config)


def load_classifier(folder: str | Path = ASSET_DIR) -> Classifier:
    """The classifier saved in folder, loaded once per folder."""
    return _load(Path(folder).resolve())


# ---- inference API ---------------------------------------------------------------------------

def classify_audio(audio: np.ndarray, sample_rate: int, classifier: Classifier | None = None) -> dict:
    """{"probabilities": {class: p}, "top": class} of audio shaped (samples,) or (samples, channels)."""
    clf = classifier or load_classifier()
    mono = prepare_audio(audio, sample_rate, clf.features)
    return clf.result(log_mel(mono, clf.features))


def classify_score(score: symusic.Score, classifier: Classifier | None = None) -> dict:
    """Render a score with the shipped piano soundfont (as in training) and classify it."""
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
        from musicgen.tokenizer import read_midi

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


def main(args) -> int:
    """CLI entry for `classify FILE [--json] [--classifier DIR]`: print the result."""
    folder = getattr(args, "classifier", None) or ASSET_DIR
    result = classify_file(args.file, load_classifier(folder))
    if getattr(args, "json", False):
        rounded = {"probabilities": {c: round(p, 4) for c, p in result["probabilities"].items()},
                   "top": result["top"]}
        print(json.dumps(rounded))
    else:
        print(f"{Path(args.file).name}: {sounds_like(result)}")
    return 0
