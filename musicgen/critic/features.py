"""What the critic hears: audio -> log band power in dB, one band per piano key (or Slaney mel bands).

Bands are Slaney mel bands or one per piano key (`FeatureConfig.scale`); the shipped critic uses
keys, continued ten semitones above C8 (98 bands). A piece is judged on up to `max_clips` evenly
spaced 10 s clips, each also heard moved `key_shifts` keys up and down.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from musicgen.config import restore
from musicgen.errors import MusicgenError

MIN_SECONDS = 2.0  # a shorter sound holds too few notes to say anything about style
MAX_SECONDS = 1200.0  # longer audio is judged on its first 20 minutes (clips are spread over it)
SILENCE_PEAK = 1e-4  # -80 dBFS: nothing audible, and normalising it would only amplify noise
AMIN = 1e-5  # power floor before the log: about 70 dB below a loud chord at our loudness target
FLOOR_DB = 10 * math.log10(AMIN)  # what silence looks like in the features: pads short pieces
PIANO_KEYS = 88  # A0 (MIDI 21) .. C8 (MIDI 108)
SCALES = ("mel", "semitone")

# fields added after the first saved runs, with the value a save from before them meant
# (the defaults of the day): an old run loads as it was trained, not with today's defaults
FEATURES_BEFORE = {"scale": "mel", "key_shifts": 0}


def semitone_edges_hz(n_bands: int) -> np.ndarray:
    """The frequencies of the keys from G#0 up to one past the top band: each band's neighbours."""
    keys = np.arange(20, 22 + n_bands)  # with 88 bands, 20 and 109 bound A0 and C8
    return 440.0 * 2.0 ** ((keys - 69) / 12.0)


def top_band_error(sample_rate: int, n_bands: int) -> MusicgenError | None:
    """The error of semitone bands that do not fit under the Nyquist frequency, else None."""
    if semitone_edges_hz(n_bands)[-1] > sample_rate / 2:
        return MusicgenError(f"a sample rate of {sample_rate} Hz cannot hold the top band "
                             f"({n_bands} from A0)")
    return None


@dataclass
class FeatureConfig:
    sample_rate: int = 16000  # piano partials above 8 kHz say little about style; renders 1.4x faster
    n_fft: int = 2048  # 128 ms Hann window: 7.8 Hz bins tell semitones apart from about C3 up
    hop: int = 368  # 23 ms between frames
    n_mels: int = 98  # the 88 keys and 10 semitones of partials above C8 (up to A#8, 7.5 kHz)
    scale: str = "semitone"  # "semitone": one band per piano key (n_mels >= 88); "mel": Slaney mel bands
    fmin: float = 27.5  # A0, the lowest piano key (mel bands)
    fmax: float = 8000.0  # the Nyquist frequency at 16 kHz (mel bands)
    clip_sec: float = 10.0  # a few bars: long enough for phrasing, short enough to get many per piece
    max_clips: int = 32  # clips judged per piece, evenly spaced, in validation and tests (8 in training runs)
    key_shifts: int = 3  # semitone bands: also judge each clip moved 1..k keys up and down, averaged

    # how a piece is judged, not what the model learnt: a saved critic may be retested with others
    TEST_TIME = ("max_clips", "key_shifts")

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "max_clips"):
            if getattr(self, name) < 1:
                raise MusicgenError(f"--{name.replace('_', '-')} must be a positive whole number, "
                                    f"not {getattr(self, name)}")
        if not self.clip_sec > 0:  # NaN too
            raise MusicgenError(f"--clip-sec must be positive, not {self.clip_sec}")
        if self.key_shifts < 0:
            raise MusicgenError(f"--key-shifts is 0 or more (keys each way), not {self.key_shifts}")
        if self.scale not in SCALES:
            raise MusicgenError(f"unknown band scale {self.scale!r}: use --scale mel or --scale semitone")
        if self.scale == "semitone":
            if self.n_mels < PIANO_KEYS:
                raise MusicgenError(f"the semitone scale has at least {PIANO_KEYS} bands, one per key; "
                                    "pass --n-mels 88 (or more, for semitones above C8)")
            too_high = top_band_error(self.sample_rate, self.n_mels)
            if too_high:
                raise too_high
        elif self.key_shifts:
            raise MusicgenError("--key-shifts moves semitone bands; it needs --scale semitone (--n-mels 88 "
                                "or more), or pass --key-shifts 0 with --scale mel")

    @property
    def clip_frames(self) -> int:
        """Frames in one clip."""
        return round(self.clip_sec * self.sample_rate / self.hop)

    def recipe(self) -> dict:
        """The settings the model learnt from: every field but the test-time ones."""
        return {k: v for k, v in asdict(self).items() if k not in self.TEST_TIME}

    def render_settings(self) -> dict:
        """The settings a rendered piece's features depend on (the feature cache's key): the
        recipe without the clip length, which only says where clips are cut from them."""
        return {k: v for k, v in self.recipe().items() if k != "clip_sec"}

    def with_test_time(self, max_clips: int, key_shifts: int) -> FeatureConfig:
        """The same recipe, judging `max_clips` clips per piece heard `key_shifts` keys up and down."""
        return dataclasses.replace(self, max_clips=max_clips, key_shifts=key_shifts)


def load_features(saved: dict) -> FeatureConfig:
    """FeatureConfig of a saved critic or run (fields it predates take the value it meant)."""
    return restore(FeatureConfig, {**FEATURES_BEFORE, **saved})


# ---- filterbanks -----------------------------------------------------------------------------

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


@functools.lru_cache(maxsize=8)
def semitone_filterbank(sample_rate: int, n_fft: int, n_bands: int = PIANO_KEYS) -> np.ndarray:
    """(n_bands, n_fft // 2 + 1) triangles, one per piano key (A0 up; past C8 the semitones go on
    above the keyboard, where only partials sound), peaking at 1 on the key's frequency and
    reaching zero on its neighbours' (or one FFT bin away where keys are closer than a bin).

    Peak-normalised, so a partial counts fully in the key it sits on, whatever the band's width.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    bin_hz = fft_hz[1]
    too_high = top_band_error(sample_rate, n_bands)
    if too_high:
        raise too_high
    edges_hz = semitone_edges_hz(n_bands)
    centre = edges_hz[1:-1]
    lower = np.minimum(edges_hz[:-2], centre - bin_hz)  # low keys: wider than a bin, so never empty
    upper = np.maximum(edges_hz[2:], centre + bin_hz)
    return triangles(fft_hz, lower, centre, upper).astype(np.float32)


def filterbank(cfg: FeatureConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) band weights of the configured scale (FeatureConfig checked it)."""
    if cfg.scale == "mel":
        return mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    return semitone_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)


# ---- audio to features -----------------------------------------------------------------------

BLOCK_FRAMES = 4096  # frames transformed at once: 95 s at 16 kHz, 34 MB of spectrum at 2048 points


def log_mel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(frames, n_mels) float32 log band power in dB (mel or semitone bands) of mono audio at
    cfg.sample_rate: torch.stft's centred frames, a block at a time, so 20 minutes of audio never
    hold their whole spectrum in memory (+1.2 GB at once, measured)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    half = cfg.n_fft // 2
    x = torch.nn.functional.pad(x[None, None], (half, half), mode="reflect")[0, 0]  # stft's centring
    n_frames = 1 + (len(x) - cfg.n_fft) // cfg.hop
    window, fb = torch.hann_window(cfg.n_fft), torch.from_numpy(filterbank(cfg))
    out = np.empty((n_frames, fb.shape[0]), np.float32)
    for f0 in range(0, n_frames, BLOCK_FRAMES):
        f1 = min(n_frames, f0 + BLOCK_FRAMES)
        part = x[f0 * cfg.hop:(f1 - 1) * cfg.hop + cfg.n_fft]
        spec = torch.stft(part, cfg.n_fft, cfg.hop, window=window, center=False, return_complex=True)
        mel = fb @ spec.abs().square()  # (M, frames)
        out[f0:f1] = (10.0 * torch.log10(mel.clamp_min(AMIN))).T.numpy()
    return out


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of mono audio: cut (or zero-pad) its spectrum to the new Nyquist."""
    if sr_in == sr_out:
        return audio
    n_out = max(1, round(len(audio) * sr_out / sr_in))
    spec = torch.fft.rfft(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
    out = torch.fft.irfft(spec, n=n_out) * (n_out / len(audio))  # irfft truncates or pads the bins
    return out.numpy().astype(np.float32)


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


# ---- clips -----------------------------------------------------------------------------------

def clip_starts(n_frames: int, clip_frames: int, max_clips: int) -> list[int]:
    """Start frames of up to max_clips evenly spaced clips that together cover the piece."""
    if n_frames <= clip_frames:
        return [0]
    n = min(max_clips, math.ceil(n_frames / clip_frames))
    return [int(s) for s in np.linspace(0, n_frames - clip_frames, n).round()]


def crop(mel: np.ndarray, start: int, frames: int) -> np.ndarray:
    """mel[start:start+frames] as float32, padded with silence where the piece is shorter."""
    out = mel[start:start + frames].astype(np.float32)
    if len(out) < frames:
        out = np.pad(out, ((0, frames - len(out)), (0, 0)), constant_values=FLOOR_DB)
    return out


def shift_keys(x: np.ndarray, k: int) -> np.ndarray:
    """Semitone-band frames (..., bands) moved k keys up (k > 0) or down: the audio transposed,
    near enough (partials above C8 are not in the bands), with silence coming in at the edge."""
    out = np.full_like(x, FLOOR_DB)
    if k >= 0:
        out[..., k:] = x[..., : x.shape[-1] - k]
    else:
        out[..., :k] = x[..., -k:]
    return out
