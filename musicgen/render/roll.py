"""MIDI -> piano-roll PNG with matplotlib: seed and continuation in two colours, velocity as shade."""

from __future__ import annotations  # symusic.Score is a factory, not a type, in hints

from pathlib import Path

import numpy as np
import symusic

from musicgen.errors import MusicgenError
from musicgen.render.score import CONTINUATION_COLOR
from musicgen.tokenizer import read_midi

SEED_COLOR = "#1f5fa8"
DPI = 100
MARGINS_PX = {"left": 42, "right": 10, "bottom": 34, "top": 20}  # room for axis labels and legend


def time_axis(midi: str | Path | symusic.Score, width_px: int = 1200) -> tuple[float, float, float]:
    """Where a roll's time axis lies: (left edge, right edge) as fractions of the image's width,
    and the quarter notes it spans, from 0 to the end of the last note."""
    score = read_midi(midi)
    ends = [n.end for t in score.tracks if not t.is_drum for n in t.notes]
    return MARGINS_PX["left"] / width_px, 1 - MARGINS_PX["right"] / width_px, max(ends, default=0) / score.tpq


def midi_to_roll_png(
    midi: str | Path | symusic.Score,
    path: str | Path,
    split_tick: int | None = None,
    width_px: int = 1200,
    height_px: int = 400,
    end_tick: int | None = None,
    first_bar: int = 1,
) -> tuple[float, float, float]:
    """Draw the notes as a piano roll (x: bars, y: pitch) into a PNG of exactly width_px x height_px;
    return where its time axis lies: (left edge, right edge) as fractions of the width, and the
    quarter notes it spans (for a cursor drawn over the image). Notes from split_tick (up to
    end_tick, where given) are the new music; bars are numbered from first_bar."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import to_rgb
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as err:
        raise ImportError("drawing piano rolls needs matplotlib: pip install matplotlib") from err

    score = read_midi(midi)
    notes = np.array(
        [(n.time, n.duration, n.pitch, n.velocity) for t in score.tracks if not t.is_drum for n in t.notes],
        dtype=float,
    ).reshape(-1, 4)
    if not len(notes):
        raise MusicgenError("the MIDI has no notes to draw")
    tpq = score.tpq
    start, dur, pitch, vel = (
        notes[:, 0] / tpq,
        notes[:, 1] / tpq,
        notes[:, 2],
        notes[:, 3],
    )  # x in quarter notes
    end_q = float((start + dur).max())

    # Figure, not pyplot: no global state, so the app may draw from several threads.
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=MARGINS_PX["left"] / width_px,
        right=1 - MARGINS_PX["right"] / width_px,
        bottom=MARGINS_PX["bottom"] / height_px,
        top=1 - MARGINS_PX["top"] / height_px,
    )
    ax = fig.add_subplot()

    continuation = np.zeros(len(notes), bool) if split_tick is None else notes[:, 0] >= split_tick
    if split_tick is not None and end_tick is not None:
        continuation &= notes[:, 0] < end_tick
    base = np.where(continuation[:, None], to_rgb(CONTINUATION_COLOR), to_rgb(SEED_COLOR))
    shade = 0.25 + 0.75 * np.clip(vel, 1, 127)[:, None] / 127  # soft notes fade towards white
    colors = 1 - shade * (1 - base)
    x0, x1, y0, y1 = start, start + dur, pitch - 0.45, pitch + 0.45
    verts = np.stack(
        [np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1
    )
    ax.add_collection(
        PolyCollection(verts, facecolors=colors, edgecolors=base * 0.7, linewidths=0.4, zorder=3)
    )

    # Bar lines and bar numbers, thinned out so labels never collide.
    downbeats = [t / tpq for t in score.get_downbeats() if t / tpq <= end_q + 1e-9]
    ax.vlines(downbeats, 0, 128, colors="#b8b8b8", linewidths=0.6, zorder=1)
    every = max(1, int(np.ceil(len(downbeats) * 28 / max(width_px - 52, 1))))
    ax.set_xticks(downbeats[::every], [str(first_bar + i) for i in range(0, len(downbeats), every)])
    ax.set_xlabel("bar", fontsize=9, labelpad=2)

    low, high = int(pitch.min()) - 2, int(pitch.max()) + 2
    if high - low < 24:  # at least two octaves, so a short phrase is not drawn as huge blocks
        low, high = (low + high) // 2 - 12, (low + high) // 2 + 12
    c_notes = [p for p in range(0, 128, 12) if low <= p <= high]
    ax.set_yticks(c_notes, [f"C{p // 12 - 1}" for p in c_notes])
    ax.hlines(c_notes, 0, end_q, colors="#e2e2e2", linewidths=0.6, zorder=0)
    ax.set_xlim(0, end_q)
    ax.set_ylim(low - 0.5, high + 0.5)
    ax.tick_params(labelsize=8, length=2, pad=2)

    if split_tick is not None:
        for tick in (split_tick, end_tick):
            if tick is not None:
                ax.axvline(tick / tpq, color=CONTINUATION_COLOR, linestyle="--", linewidth=1.2, zorder=4)
        ax.legend(  # in the top margin, so it never hides notes
            handles=[
                Patch(color=SEED_COLOR, label="seed"),
                Patch(color=CONTINUATION_COLOR, label="continuation" if end_tick is None else "rewritten"),
            ],
            loc="lower right",
            bbox_to_anchor=(1, 1),
            ncol=2,
            frameon=False,
            fontsize=8,
            borderaxespad=0.1,
            handlelength=1.2,
        )
    fig.savefig(str(path), dpi=DPI, format="png")
    return time_axis(score, width_px)
