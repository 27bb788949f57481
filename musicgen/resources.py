"""Where the shipped files are: `assets/` (model, critic, example seeds) and `soundfonts/`.

In a source checkout (the Space, `pip install -e .`) they sit beside the package; a wheel
(`pip install .`) carries them inside it as musicgen/assets and musicgen/soundfonts
(pyproject.toml maps the folders there). One resolver, so no module guesses a path.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The shipped folder `name` ("assets" or "soundfonts"): inside the package once installed,
    else beside it (a checkout has no musicgen/assets, so the two never mix)."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name


ASSETS = shipped("assets")
SOUNDFONTS = shipped("soundfonts")
MODEL_DIR = ASSETS / "model"  # the generator's checkpoint
CLASSIFIER_DIR = ASSETS / "classifier"  # the critic
EXAMPLES_DIR = ASSETS / "examples"  # the app's example seeds
