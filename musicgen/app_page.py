"""What the page shows, as values for its components: a result's variation slots, the piece, the
seed's player, and the buttons while a job runs and after it. app.py wires them to events."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from musicgen import app_logic as logic
from musicgen.app_render import View, make_wav, render
from musicgen.app_session import History, Piece, Result
from musicgen.errors import MusicgenError
from musicgen.sample import clip_from
from musicgen.tokenizer import bar_starts

N = logic.MAX_VARIATIONS  # variation slots on the page
PREVIEW_BARS = 32  # the seed's player and roll: its last bars, where the new music picks up


def view_values(view: View | None) -> list:
    """Audio, roll and sheet of one view (empty where not drawn yet)."""
    if view is None:
        return [None, None, "<p class='sheet-empty'>No notes to engrave.</p>"]
    return [view.mp3 and str(view.mp3), view.roll and str(view.roll), view.html()]


def variation_values(result: Result | None) -> list:
    """Audio, roll, sheet, downloads and style line for each of the N variation slots."""
    values = []
    for i in range(N):
        v = result.variations[i] if result and i < len(result.variations) else None
        if v is None:
            values += [None, None, "", None, ""]
        else:
            values += [*view_values(v.view(result.whole)), v.downloads(result.whole), v.sounds_like]
    return values


def draw(result: Result, soundfont: str | Path | None, job: logic.Job):
    """Render the result's views, then the style verdicts not made yet, yielding after each
    finished piece; Stop (the job's flag, or Gradio closing the handler) ends it there and marks
    the result stopped."""
    if job.stopped.is_set():  # stopped while it was being composed
        result.stopped = True
        return
    stream = render(result.views(), soundfont,
                    [v for v in result.variations if v.score is not None and not v.judged])
    try:
        with logic.user_errors("drawing the music"):
            for _ in stream:
                if job.stopped.is_set():
                    break
                yield
    finally:
        stream.close()  # nothing new starts
        result.stopped = not result.finished()


def seed_preview(path: str | None, soundfont: str | Path | None) -> list:
    """The seed's player, roll and cursor data (its last PREVIEW_BARS bars, numbered as in the
    file), a status line (which clears the last error's badge) and the Seed tab opened."""
    if not path:
        return [None, None, "", "Press **Compose** to hear what comes next.", gr.skip()]
    try:
        score = logic.read_seed(path)
        starts = bar_starts(score)
        cut = int(starts[-PREVIEW_BARS]) if len(starts) > PREVIEW_BARS else 0
        shown = clip_from(score, cut) if cut else score
        name = logic.output_stem(path, "seed")
        view = View(shown, None, logic.new_request_dir() / f"{name}-seed", f"{name} (seed)",
                    first_bar=int((starts < cut).sum()) + 1)  # numbered as in the file
        with logic.user_errors("drawing the seed"):
            for _ in render([view], soundfont, stages=("roll", "audio")):
                pass
    except (MusicgenError, gr.Error) as e:
        return [None, None, "", f"**This seed can't be used:** {e}", gr.skip()]
    heard = f"its last {PREVIEW_BARS} bars" if cut else "all of it"
    return [view.mp3 and str(view.mp3), view.roll and str(view.roll), view.html(data_only=True),
            f"**Seed {Path(path).name} ready** (the Seed tab plays {heard}): press **Compose**.",
            gr.Tabs(selected="seed")]


def piece_values(piece: Piece, status: str) -> list:
    """The piece's seed-file value, status, player, roll, sheet, downloads, part list, whether its
    player shows, and the state."""
    view = piece.view
    parts = piece.labels()
    files = [str(piece.midi), *view.files()] if view else None
    player = view_values(view) if view else [None, None, ""]
    return [str(piece.midi) if piece.midi else None, status, *player, files,
            gr.Dropdown(choices=parts, value=parts[-1][1] if parts else None), gr.Column(visible=bool(view)),
            piece]


def draw_piece(piece: Piece, soundfont: str | Path | None, status: str, job: logic.Job):
    """Yield the piece's outputs now, then after each piece of its drawing (until Stop). The seed
    and the part list are set once, at first: a seed the user picks while the piece is still being
    drawn stays the seed."""
    yield piece_values(piece, status)
    if piece.view is not None:
        stream = render([piece.view], soundfont)
        try:
            with logic.user_errors("drawing your piece"):
                for _ in stream:
                    _seed, status_now, *player, files, _parts, box, state = piece_values(piece, status)
                    yield [gr.skip(), status_now, *player, files, gr.skip(), box, state]
                    if job.stopped.is_set():
                        break
        finally:
            stream.close()


def rewrite_source(source, choice, seed_midi, history, variations):
    """Lock the page for a rewrite and name the piece it works on: the seed, or the variation shown."""
    if source == "result":
        if history is None or history.current is None:
            raise gr.Error("Compose something first, or choose to rewrite bars of the seed.")
        piece_midi = str(history.chosen(choice).midi)
    elif not seed_midi:
        raise gr.Error("Upload a seed MIDI (or pick an example) to rewrite bars of it.")
    else:
        piece_midi = seed_midi
    return [*busy(variations), piece_midi]


def busy(variations=None):
    """While a job runs: Compose, Rewrite, the result buttons and the whole-piece switch are off,
    Stop is on; a new request shows as many variation tabs as it asks for."""
    n = None
    if variations is not None:
        try:
            n = min(max(int(variations), 1), N)
        except (TypeError, ValueError):
            n = 1
    tabs = [gr.skip() if n is None else gr.Tab(visible=i < n) for i in range(N)]
    return [gr.Button(interactive=False), gr.Button(interactive=True), *[gr.Button(interactive=False)] * 6,
            gr.Checkbox(interactive=False), gr.skip() if n is None else gr.Tabs(selected=0), *tabs]


def idle(history: History | None) -> list:
    """After a job: Compose back, Stop off, one tab per variation made, the choices to match."""
    n = len(history.current.variations) if history and history.current else 0
    tabs = [gr.Tab(visible=i < max(n, 1)) for i in range(N)]
    return [gr.Button(interactive=True), gr.Button(interactive=False), *[gr.Button(interactive=n > 0)] * 3,
            gr.Button(interactive=True), gr.Button(interactive=bool(history and history.past)),
            gr.Button(interactive=True), gr.Checkbox(interactive=True),
            gr.skip(), *tabs, gr.Radio(choices=[str(i + 1) for i in range(max(n, 1))], visible=n > 1)]


def variation_wav(slot: int, history: History | None, soundfont: str | Path | None) -> list[str]:
    """Write the WAV of one variation (on request: WAV is most of a result's bytes) and list it."""
    if history is None or history.current is None or slot >= len(history.current.variations):
        raise gr.Error("Compose something first.")
    v = history.current.variations[slot]
    view = v.view(history.current.whole)
    if view is None:
        raise gr.Error("This variation has no notes to render.")
    with logic.user_errors("writing the WAV"):
        make_wav(view, soundfont)
    return v.downloads(history.current.whole)


def undo(history: History | None) -> list:
    """Go back to the previous result and its seed."""
    with logic.user_errors("undoing"):
        result = (history or History()).undo()
    status = f"**Back to the previous result.** {result.status().removeprefix('**Done.** ')}"
    return [result.seed_midi, result.random_seed, status, *variation_values(result), result.whole,
            history]


def stop(history: History | None) -> list:
    """After Stop: the stopped result's status, Compose back."""
    return [history.current.status() if history and history.current else "**Stopped.**", *idle(history)]


def keep_take(choice, history: History | None, piece: Piece | None, soundfont: str | Path | None,
              session: str | None):
    """Append the chosen take's new bars to the piece; the piece becomes the seed to continue."""
    if history is None or history.current is None:
        raise gr.Error("Compose something first, then keep the take you like.")
    piece = piece or Piece()
    number = min(max(int(choice or 1), 1), len(history.current.variations))
    with logic.one_job_per_session(session) as job:
        with logic.user_errors("keeping the take"):
            piece.keep(history.current, history.chosen(number), number)
        status = f"**Kept.** Your piece: {piece.summary()}. **Compose** now continues it."
        yield from draw_piece(piece, soundfont, status, job)


def remove_part(index, piece: Piece | None, soundfont: str | Path | None, session: str | None):
    """Take one part out of the piece."""
    if piece is None or not piece.segments:
        raise gr.Error("Your piece is empty: keep a take first.")
    with logic.one_job_per_session(session) as job:
        with logic.user_errors("removing the part"):
            piece.remove(int(index if index is not None else len(piece.segments) - 1))
        left = f"Your piece: {piece.summary()}." if piece.segments else "Your piece is empty."
        status = f"**Removed.** {left}"
        yield from draw_piece(piece, soundfont, status, job)


def piece_wav(piece: Piece | None, soundfont: str | Path | None) -> list[str]:
    """Write the piece's WAV and list it with its other downloads."""
    if piece is None or piece.view is None:
        raise gr.Error("Your piece is empty: keep a take first.")
    with logic.user_errors("writing the WAV"):
        make_wav(piece.view, soundfont)
    return [str(piece.midi), *piece.view.files()]
