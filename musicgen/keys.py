"""Keys: the signature every output carries, and a key a user names for music from scratch.

The tokens carry no key, so the key signature is put back after decoding: the seed's, the one
the user asked for, or the one the new notes suggest (Krumhansl-Schmuckler, as the coherence
report reads keys).
"""

from __future__ import annotations

import re

import numpy as np
import symusic

from musicgen.coherence import estimate_key, fifths
from musicgen.errors import MusicgenError

LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
KEY_TEXT = re.compile(r"^([a-g])(#|b)?\s*(major|minor|maj|min|m)?$")
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10, 11)  # minor: natural, plus the leading tone


def parse_key(text: str) -> tuple[int, str, int]:
    """(tonic pitch class, "major" | "minor", sharps: negative for flats) from "A major", "F# minor",
    "Bb", "ebm"; the signature is spelled as written (Gb major: 6 flats, F# major: 6 sharps)."""
    m = KEY_TEXT.match(str(text).strip().lower()) if isinstance(text, str) else None
    if not m:
        raise MusicgenError(f"key must be a note name and major or minor, like 'A major', 'F# minor' or "
                            f"'Bb major', not {text!r}")
    letter, accidental, mode = m.groups()
    tonic = (LETTERS[letter] + {"#": 1, "b": -1}.get(accidental or "", 0)) % 12
    mode = "minor" if mode in ("minor", "min", "m") else "major"
    sharps = sharps_of((tonic, mode))
    if accidental == "#" and sharps < 0:  # spelled as written: C# major, A# minor
        sharps += 12
    if accidental == "b" and sharps > 0:  # Gb major, Eb minor, Ab minor
        sharps -= 12
    return tonic, mode, sharps


def sharps_of(key: tuple[int, str]) -> int:
    """Sharps (negative: flats) of a key's signature, from Db (-5) to F# (6), as the engraver spells."""
    return (fifths(key) + 5) % 12 - 5


def key_signature(text: str) -> symusic.KeySignature:
    """The signature of a key named as parse_key reads it, at tick 0."""
    _, mode, sharps = parse_key(text)
    return symusic.KeySignature(0, sharps, 1 if mode == "minor" else 0)


def scale_counts(tonic: int, mode: str) -> np.ndarray:
    """Pitch-class counts (12,) of a seed squarely in the key: the tonic 8, its third and fifth 6,
    the other scale degrees 4, the rest 0; what the key hold pulls toward when there is no seed."""
    counts = np.zeros(12)
    for degree in (MINOR if mode == "minor" else MAJOR):
        counts[(tonic + degree) % 12] = 4
    for degree, n in ((0, 8), (3 if mode == "minor" else 4, 6), (7, 6)):
        counts[(tonic + degree) % 12] = n
    return counts


def seed_key(score: symusic.Score) -> symusic.KeySignature | None:
    """The key signature in force at the score's end; where it has none (or only C major, often a
    writer's default) the key its notes suggest, or None without notes."""
    sigs = sorted(score.key_signatures, key=lambda k: k.time)
    if sigs and (sigs[-1].key != 0 or sigs[-1].tonality != 0):
        return symusic.KeySignature(0, sigs[-1].key, sigs[-1].tonality)
    found = estimate_key(score)
    if found is None:
        return None
    return symusic.KeySignature(0, sharps_of(found), 1 if found[1] == "minor" else 0)
