"""The app's two kinds of request, checked, composed and written to MIDI (drawn afterwards by
app_render): a continuation of a seed, and a rewrite of some bars of a piece (infill).

The functions that sample take the sampler as an argument, so app.py can hand them the one it
wraps for a ZeroGPU Space.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from musicgen import app_logic as logic
from musicgen.app_render import RENDER_SEED_BARS, write_variations
from musicgen.app_session import History, Result
from musicgen.errors import MusicgenError
from musicgen.sample import Generation, SampleConfig

# the app's own switches (the others are SampleConfig's), as the API names them
SWITCHES = {"random_seed": "Random seed", "vary_tempo": "Let the model vary the tempo",
            "whole_piece": "Show the whole piece", "end": "End the piece"}


def check_form(form: dict, soundfonts: dict) -> dict:
    """The form's numbers (checked against app_logic.FORM, for API callers too), after its
    soundfont and switches are checked; MusicgenError names whatever is wrong."""
    soundfont = form["soundfont"]
    if soundfont and soundfont not in soundfonts:
        raise MusicgenError(f"unknown soundfont {soundfont!r}; choose one of: {', '.join(soundfonts)}")
    for name, label in SWITCHES.items():
        if name in form and not isinstance(form[name], bool):
            raise MusicgenError(f"{label} ({name}) must be true or false, not {form[name]!r}")
    return {k: logic.form_value(k, v) for k, v in form.items() if k in logic.FORM}


def continuation(compose: Callable, seed_midi: str | None, form: dict, history: History,
                 soundfonts: dict) -> Result:
    """Continue the seed (None: from scratch) as the form asks; each variation's MIDI written."""
    knobs = check_form(form, soundfonts)
    score = logic.read_seed(seed_midi)
    used_seed = logic.pick_seed(form["random_seed"], knobs.pop("seed"))
    cfg = SampleConfig(**knobs, style=form["style"], seed=used_seed, vary_tempo=form["vary_tempo"],
                       end=form.get("end", False), key=form.get("key") or "", meter=form.get("meter") or "")
    gen = compose(score, cfg)
    stem = logic.output_stem(seed_midi, cfg.style)
    title = f"{stem}, continued" if score is not None else f"From scratch, style: {cfg.style}"
    result = new_result(gen, history, seed_midi, stem, title, f"{gen.describe()}; random seed {used_seed}",
                        used_seed, cfg.bars, form["whole_piece"])
    if any(v.split != view.split for v in result.variations if (view := v.view(result.whole))):
        result.summary += (f"; you hear and see the new bars from {RENDER_SEED_BARS} bars before them "
                           "(tick “Show the whole piece” for all of it), the MIDI holds the whole piece")
    return result


def rewrite(fill: Callable, piece_midi: str | None, bars: str, form: dict, history: History,
            soundfonts: dict) -> Result:
    """Rewrite bars ("9-12", numbered as in the piece) of a piece MIDI, each variation the whole
    piece with those bars replaced."""
    from musicgen.infill import parse_bars

    knobs = check_form(form, soundfonts)
    if not piece_midi:
        raise MusicgenError("there is no piece to rewrite: upload a MIDI (or pick an example) first")
    if not isinstance(bars, str):
        raise MusicgenError(f"bars must be written like 9-12, not {bars!r}")
    first, stop = parse_bars(bars)
    score = logic.read_seed(piece_midi)
    used_seed = logic.pick_seed(form["random_seed"], knobs.pop("seed"))
    cfg = SampleConfig(**knobs, style=form["style"], seed=used_seed)
    gen = fill(score, first, stop, cfg)
    stem = logic.output_stem(piece_midi, cfg.style)
    span = f"bar {first}" if stop == first + 1 else f"bars {first}–{stop - 1}"
    summary = f"{span} of {Path(piece_midi).name} rewritten: {gen.describe()}; random seed {used_seed}"
    return new_result(gen, history, piece_midi, stem, f"{stem}, {span} rewritten", summary, used_seed,
                      stop - first, form["whole_piece"])


def new_result(gen: Generation, history: History, source: str | None, stem: str, title: str, summary: str,
               used_seed: int, bars: int, whole: bool) -> Result:
    """A Result for a generation: its variations' MIDI written under names unique in the session."""
    take = history.next_take()
    made = write_variations(gen.scores, gen.split_tick, logic.new_request_dir(), f"{stem}-take{take}", title,
                            getattr(gen, "fill_end_tick", None))
    return Result(source, made, summary, used_seed, take, bars, whole=whole)
