"""MIDI -> audio with FluidSynth, rendered offline (no audio driver), plus WAV/MP3 writers."""

from __future__ import annotations  # symusic.Score is a factory, not a type, in hints

from ctypes import c_int, c_void_p
from pathlib import Path

import numpy as np
import symusic

from musicgen.errors import MusicgenError
from musicgen.resources import SOUNDFONTS
from musicgen.tokenizer import read_midi

SHIPPED_SOUNDFONT = SOUNDFONTS / "fluidr3-grand-piano.sf2"
# Where Debian/Ubuntu, Fedora/Arch and Homebrew put soundfonts, after our own folder.
SOUNDFONT_DIRS = (
    SHIPPED_SOUNDFONT.parent,
    Path("/usr/share/sounds/sf2"),
    Path("/usr/share/sounds/sf3"),
    Path("/usr/share/soundfonts"),
    Path("/opt/homebrew/share/soundfonts"),
    Path.home() / ".local/share/soundfonts",
)
INSTALL_HINT = (
    "FluidSynth is needed to render audio but its shared library could not be loaded. "
    "Install it with `sudo apt-get install libfluidsynth3` on Debian/Ubuntu or "
    "`brew install fluid-synth` on macOS (and the Python binding with `pip install pyfluidsynth`)."
)
TAIL_SEC = 0.8  # let the last notes ring out; keeps length within 1 s of the MIDI's
FADE_SEC = 0.2  # fade the end of the tail so a cut-off release does not click
TARGET_RMS_DB = -20.0  # loudness target, then the peak is clamped into the range below
PEAK_MIN_DB, PEAK_MAX_DB = -6.0, -1.0
SYNTH_GAIN = 0.2  # FluidSynth's default; float output keeps any overshoot, we normalise after
DRUM_CHANNEL = 9
MAX_RENDER_SECONDS = 1200.0  # 20 minutes: 106 M samples of stereo float32 at 44.1 kHz (+420 MB)


class FluidSynthMissingError(MusicgenError, RuntimeError):
    """The FluidSynth shared library (or its Python binding) is not installed."""


def list_soundfonts() -> dict[str, Path]:
    """Name -> path of usable soundfonts: the shipped piano first, then repo and system ones."""
    found: dict[str, Path] = {}
    seen: set[Path] = set()
    candidates = [SHIPPED_SOUNDFONT] + [
        p
        for d in SOUNDFONT_DIRS
        if d.is_dir()
        for p in sorted(d.iterdir())
        if p.suffix.lower() in (".sf2", ".sf3")
    ]
    for path in candidates:
        real = path.resolve()
        if not real.is_file() or real in seen:  # skips dangling links and aliases like default-GM.sf2
            continue
        seen.add(real)
        name = path.stem if path.stem not in found else f"{path.stem} ({path.parent})"
        found[name] = path
    return found


def default_soundfont() -> Path:
    """The shipped piano soundfont, else the first one found on the system."""
    fonts = list_soundfonts()
    if not fonts:
        raise MusicgenError(
            f"No soundfont found. Rebuild {SHIPPED_SOUNDFONT} with `python scripts/build_soundfont.py` "
            "(needs `sudo apt-get install fluid-soundfont-gm`) or pass soundfont=path/to/file.sf2"
        )
    return next(iter(fonts.values()))


def _import_fluidsynth():
    """Import pyfluidsynth, turning a missing library into an error that says what to install."""
    try:
        import fluidsynth
    except (ImportError, OSError) as err:  # pyfluidsynth raises ImportError, CDLL raises OSError
        raise FluidSynthMissingError(INSTALL_HINT) from err
    return fluidsynth


class _Synth:
    """One FluidSynth instance with one soundfont loaded, for one render."""

    def __init__(self, soundfont: Path, sample_rate: int):
        fluidsynth = _import_fluidsynth()
        # no chorus: a piano does not want it, and it costs ~10% of the render time
        self.synth = fluidsynth.Synth(
            gain=SYNTH_GAIN, samplerate=float(sample_rate), **{"synth.chorus.active": 0}
        )
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            self.synth.delete()
            raise MusicgenError(f"FluidSynth could not load the soundfont {soundfont}")
        # pyfluidsynth only wraps the int16 writer; float output leaves headroom for loud
        # chords, which int16 would clip before we get to normalise.
        self.write_float = fluidsynth._fl.fluid_synth_write_float
        self.write_float.argtypes = [c_void_p, c_int, c_void_p, c_int, c_int, c_void_p, c_int, c_int]
        self.write_float.restype = c_int

    def _pull(self, out: np.ndarray, start: int, stop: int) -> None:
        """Synthesise samples [start, stop) into out (n, 2), in place."""
        if stop > start:
            ptr = out[start:].ctypes.data
            self.write_float(self.synth.synth, stop - start, ptr, 0, 2, ptr, 1, 2)

    def render(self, events: list[tuple], programs: dict[int, int], n_samples: int) -> np.ndarray:
        """Play (sample, order, kind, channel, a, b) events sorted by time; return (n, 2) float32."""
        s = self.synth
        for chan, program in programs.items():
            bank = 128 if chan == DRUM_CHANNEL else 0
            # Asked first: a failed program_select prints an error line of FluidSynth's own.
            if s.sfpreset_name(self.sfid, bank, program) is None \
                    or s.program_select(chan, self.sfid, bank, program) < 0:  # e.g. a piano-only soundfont
                s.program_select(chan, self.sfid, 0, 0)
        out = np.zeros((n_samples, 2), np.float32)
        pos = 0
        for sample, _, kind, chan, a, b in events:
            self._pull(out, pos, sample)
            pos = max(pos, sample)
            if kind == "on":
                s.noteon(chan, a, b)
            elif kind == "off":
                s.noteoff(chan, a)
            else:
                s.cc(chan, a, b)
        self._pull(out, pos, n_samples)
        return out


def _events(score: symusic.Score, sample_rate: int) -> tuple[list[tuple], dict[int, int], float]:
    """Flatten a seconds-based score into sorted synth events, channel programs and end time."""
    events, programs, end = [], {}, 0.0
    melodic = [c for c in range(16) if c != DRUM_CHANNEL]
    for i, track in enumerate(t for t in score.tracks if t.notes):
        chan = DRUM_CHANNEL if track.is_drum else melodic[i % len(melodic)]  # >15 tracks share
        programs[chan] = track.program
        for n in track.notes:
            if n.velocity <= 0:
                continue
            # order: note-offs, then controls, then note-ons at the same instant, so repeated
            # notes re-strike and a pedal change applies to the notes that start with it.
            events.append((round(n.time * sample_rate), 2, "on", chan, n.pitch, min(n.velocity, 127)))
            events.append((round(n.end * sample_rate), 0, "off", chan, n.pitch, 0))
            end = max(end, n.end)
        for c in track.controls:
            events.append((round(c.time * sample_rate), 1, "cc", chan, c.number, c.value))
    events.sort(key=lambda e: (e[0], e[1]))
    return events, programs, end


def normalise_loudness(audio: np.ndarray) -> np.ndarray:
    """Scale to a loudness target with the peak clamped into [PEAK_MIN_DB, PEAK_MAX_DB] dBFS."""
    peak = float(np.abs(audio).max())
    if peak < 1e-5:
        raise RuntimeError("FluidSynth rendered silence: does the soundfont have a piano (bank 0, preset 0)?")
    # summed a second at a time in float64: no float64 copy of a long render is ever made
    seconds = np.array_split(audio, len(audio) // 44100 + 1)
    squares = sum(float(np.square(c, dtype=np.float64).sum()) for c in seconds)
    rms = float(np.sqrt(squares / audio.size))
    gain = 10 ** (TARGET_RMS_DB / 20) / rms
    gain = min(max(gain, 10 ** (PEAK_MIN_DB / 20) / peak), 10 ** (PEAK_MAX_DB / 20) / peak)
    return (audio * gain).astype(np.float32)


def render_audio(
    midi: str | Path | symusic.Score, soundfont: str | Path | None = None, sample_rate: int = 44100,
    max_seconds: float = MAX_RENDER_SECONDS,
) -> np.ndarray:
    """Render MIDI to stereo float32 audio of shape (n, 2), peak between -6 and -1 dBFS; only its
    first `max_seconds` (notes still sounding then are cut), so no file can ask for hours of samples."""
    sf_path = Path(soundfont) if soundfont else default_soundfont()
    score = read_midi(midi).to("second")
    if score.note_num() and score.start() >= max_seconds:
        raise MusicgenError(f"the MIDI's first note comes after {max_seconds / 60:.0f} minutes, the most "
                            "that is rendered")
    score = score.clip(0.0, max_seconds, clip_end=False)  # before any sample buffer is sized
    for track in score.tracks:
        for n in track.notes:
            n.duration = min(n.duration, max_seconds - n.time)  # symusic's clip_end drops such notes
    events, programs, end_sec = _events(score, sample_rate)
    if not programs:
        raise MusicgenError("the MIDI has no notes to render")
    n_samples = round((end_sec + TAIL_SEC) * sample_rate)
    events = [e for e in events if e[0] < n_samples]  # controls long after the last note
    # A fresh synth per render: FluidSynth's reverb keeps modulating between renders, so a
    # reused synth never plays the same MIDI the same way twice. A new one costs about 9 ms
    # once the soundfont is in the OS cache, and renders can then run side by side.
    synth = _Synth(sf_path, sample_rate)
    try:
        audio = synth.render(events, programs, n_samples)
    finally:
        synth.synth.delete()
    fade = round(FADE_SEC * sample_rate)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    return normalise_loudness(audio)


def write_wav(audio: np.ndarray, path: str | Path, sample_rate: int = 44100) -> None:
    """Write float audio in [-1, 1] as a 16-bit WAV file."""
    import soundfile

    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")


def write_mp3(audio: np.ndarray, path: str | Path, sample_rate: int = 44100, bitrate_kbps: int = 160) -> None:
    """Write float audio in [-1, 1] as an MP3 file with lameenc (no system libraries needed)."""
    try:
        import lameenc
    except ImportError as err:
        raise ImportError("writing MP3 needs lameenc: pip install lameenc") from err
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate_kbps)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1 if pcm.ndim == 1 else pcm.shape[1])
    # 7 ("fast"): a third less time than LAME's default 5 at the same bit rate; the app sends the
    # MP3 to listen to, and the WAV download keeps every sample (docs/PERFORMANCE.md)
    encoder.set_quality(7)
    Path(path).write_bytes(encoder.encode(pcm.tobytes()) + encoder.flush())
