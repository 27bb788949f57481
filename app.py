"""musicgen web app: continue a piano MIDI (or compose from scratch) with a GRU, hear it, read it,
build a piece from the takes you keep, and ask the style classifier which composer a recording or
MIDI sounds like.

`python app.py` serves it on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860). The
`generate` API endpoint takes the seed MIDI file first (None: from scratch), every other parameter
has a default; `infill` takes a piece MIDI and the bars to rewrite ("9-12"), `classify` one file.
"""

from __future__ import annotations

import logging
import os
from itertools import chain
from pathlib import Path

import gradio as gr

from musicgen import app_jobs
from musicgen import app_logic as logic
from musicgen import app_page as page
from musicgen.app_render import RENDER_SEED_BARS
from musicgen.app_session import History
from musicgen.critic import AUDIO_SUFFIXES, classify_file, load_classifier, sounds_like
from musicgen.infill import infill as rewrite_bars
from musicgen.render import list_soundfonts
from musicgen.resources import EXAMPLES_DIR, PACKAGE
from musicgen.sample import SampleConfig, load_generator
from musicgen.tokenizer import MAX_MIDI_BYTES, MIDI_SUFFIXES

try:  # ZeroGPU Spaces lend a GPU per call; elsewhere the same file runs as is (CUDA or CPU)
    import spaces
except ImportError:
    spaces = None

logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.mid"))
SOUNDFONTS = list_soundfonts()
N = logic.MAX_VARIATIONS
GENERATOR = load_generator()  # loaded once at start-up, so the first request is not slow
UI = SampleConfig(bars=8, variations=2)  # the form's starting values (and the API's defaults)
FIRST_SOUNDFONT = next(iter(SOUNDFONTS), None)
MAX_UPLOAD_BYTES = 50_000_000  # a few minutes of WAV for Analyze; MIDI seeds keep their own 4 MB cap
PLAYHEAD_JS = (PACKAGE / "web" / "playhead.js").read_text(encoding="utf-8")
CSS = (PACKAGE / "web" / "app.css").read_text(encoding="utf-8")
NATIVE_PLAYER = gr.WaveformOptions(show_recording_waveform=False)  # an <audio> the playhead can follow


def compose(seed, cfg: SampleConfig):
    """Sample the continuations (with `fill`, the only steps that want a GPU)."""
    return load_generator().generate(seed, cfg)


def fill(piece, first: int, stop: int, cfg: SampleConfig):
    """Sample new bars first..stop-1 of the piece."""
    return rewrite_bars(load_generator(), piece, first, stop, cfg)


if spaces is not None and os.environ.get("SPACES_ZERO_GPU"):
    compose, fill = spaces.GPU(duration=120)(compose), spaces.GPU(duration=120)(fill)


# generate's parameters after the seed MIDI, named as the form's components (app_jobs checks them)
SETTINGS = ("style", "seed_bars", "bars", "variations", "temperature", "top_k", "top_p", "greedy_mix",
            "repetition_penalty", "random_seed", "seed", "tempo", "soundfont", "vary_tempo", "whole_piece",
            "end", "key", "meter")
# the infill endpoint's, after the piece and the bars
INFILL_SETTINGS = ("style", "seed_bars", "variations", "temperature", "top_k", "top_p", "greedy_mix",
                   "repetition_penalty", "random_seed", "seed", "soundfont", "whole_piece")


def generate(seed_midi=None, style=UI.style, seed_bars=UI.seed_bars, bars=UI.bars,
             variations=UI.variations, temperature=UI.temperature, top_k=UI.top_k, top_p=UI.top_p,
             greedy_mix=UI.greedy_mix, repetition_penalty=UI.repetition_penalty, random_seed=True,
             seed=UI.seed, tempo=UI.tempo, soundfont=FIRST_SOUNDFONT, vary_tempo=UI.vary_tempo,
             whole_piece=False, end=UI.end, key="", meter="", history=None, request: gr.Request = None):
    """Continue the seed MIDI (None: compose from scratch); yield the MIDI at once, then each
    variation's roll, audio, sheet music and style line as they are drawn."""
    form = {k: v for k, v in locals().items() if k in SETTINGS}  # the API names its parameters
    with logic.one_job_per_session(request and request.session_hash) as job:
        yield from compose_and_show(lambda h: app_jobs.continuation(compose, seed_midi, form, h, SOUNDFONTS),
                                    form["soundfont"], history, job)


def infill(piece_midi, bars, style=UI.style, seed_bars=UI.seed_bars, variations=UI.variations,
           temperature=UI.temperature, top_k=UI.top_k, top_p=UI.top_p, greedy_mix=UI.greedy_mix,
           repetition_penalty=UI.repetition_penalty, random_seed=True, seed=UI.seed,
           soundfont=FIRST_SOUNDFONT, whole_piece=False, history=None, request: gr.Request = None):
    """Rewrite bars of the piece MIDI ("9-12", numbered as in the file) to fit between the bars
    around them; yield like generate, each variation the whole piece with those bars replaced."""
    form = {k: v for k, v in locals().items() if k in INFILL_SETTINGS}
    with logic.one_job_per_session(request and request.session_hash) as job:
        yield from compose_and_show(lambda h: app_jobs.rewrite(fill, piece_midi, bars, form, h, SOUNDFONTS),
                                    form["soundfont"], history, job)


def compose_and_show(make, soundfont, history, job):
    """One request's outputs, again after each piece is drawn: the seed used, the status, each
    variation's slot, the history."""
    history = history or History()
    with logic.user_errors():
        result = make(history)
    history.push(result)
    for _ in chain([None], page.draw(result, SOUNDFONTS.get(soundfont), job), [None]):  # now, each, last
        yield [result.random_seed, result.status(), *page.variation_values(result), history]


def continue_from(choice, *form_and_history, request: gr.Request = None):
    """Make the chosen variation the new seed and continue it with the form's settings."""
    *values, history = form_and_history
    if history is None or history.current is None:
        raise gr.Error("Compose something first, then continue from it.")
    seed_midi, form = str(history.chosen(choice).midi), dict(zip(SETTINGS, values))
    with logic.one_job_per_session(request and request.session_hash) as job:
        make = lambda h: app_jobs.continuation(compose, seed_midi, form, h, SOUNDFONTS)
        for outputs in compose_and_show(make, form["soundfont"], history, job):
            yield [seed_midi, *outputs]


def switch_view(whole: bool, history, soundfont, request: gr.Request = None):
    """Show the whole pieces, or the new bars and a few before, drawing what is not drawn yet."""
    if history is None or history.current is None:
        yield [gr.skip(), *[gr.skip()] * (5 * N)]
        return
    result = history.current
    result.whole, result.stopped = bool(whole), False
    with logic.one_job_per_session(request and request.session_hash) as job:
        yield [result.status(), *page.variation_values(result)]
        for _ in page.draw(result, SOUNDFONTS.get(soundfont), job):
            yield [result.status(), *page.variation_values(result)]
        yield [result.status(), *page.variation_values(result)]


def idle(history, request: gr.Request = None):
    """After a job: Compose back, unless the session already runs its next one (a job stopped
    just before reports its end late)."""
    return page.busy() + [gr.skip()] if logic.session_running(request and request.session_hash) \
        else page.idle(history)


def stop(history, request: gr.Request = None):
    """Stop: what is drawn stays, the rest is dropped, Compose is back at once."""
    logic.stop_session(request and request.session_hash)
    return page.stop(history)


def keep_take(choice, history, piece, soundfont, request: gr.Request = None):
    """Append the chosen take's new bars to the piece; the piece becomes the seed to continue."""
    session = request and request.session_hash
    yield from page.keep_take(choice, history, piece, SOUNDFONTS.get(soundfont), session)


def remove_part(index, piece, soundfont, request: gr.Request = None):
    """Take one part out of the piece."""
    yield from page.remove_part(index, piece, SOUNDFONTS.get(soundfont), request and request.session_hash)


def classify(path: str | None, request: gr.Request = None):
    """Which composer an uploaded recording or MIDI sounds like: class probabilities and a verdict."""
    if not path:
        raise gr.Error("Upload a recording (.wav, .mp3, .ogg, .flac) or a MIDI file first.")
    with logic.one_job_per_session(request and request.session_hash), logic.user_errors("analyzing"):
        result = classify_file(path, load_classifier())
    return result["probabilities"], f"**{Path(path).name}** {sounds_like(result, k=3)}"


def send_to_analyze(choice, history):
    """Put the chosen variation's MIDI in the Analyze tab (rendered there as the critic was trained)
    and open it."""
    if history is None or history.current is None:
        raise gr.Error("Compose something first, then analyze it.")
    return str(history.chosen(choice).midi), gr.Tabs(selected="analyze")


with gr.Blocks(title="musicgen: GRU piano composer", analytics_enabled=False,
               delete_cache=(3600, logic.MAX_AGE_SEC)) as demo:
    # kept 6 h after their last change (the files they point to expire then too), also for API
    # clients that never close a tab: sessions cannot pile up in memory
    history = gr.State(None, time_to_live=logic.MAX_AGE_SEC)
    piece = gr.State(None, time_to_live=logic.MAX_AGE_SEC)
    gr.Markdown("# musicgen · a GRU piano composer\n"
                "Upload a piano MIDI (or pick an example) and the model continues it; leave the seed "
                f"empty to compose from scratch in a composer's style. Runs on **{GENERATOR.device}**.",
                elem_id="intro")
    with gr.Tabs() as main_tabs:
        with gr.Tab("Compose", id="compose", elem_id="compose-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    # any file is taken, so a photo dropped by mistake gets a sentence, not silence
                    seed_file = gr.File(label=f"Seed MIDI (optional, up to {MAX_MIDI_BYTES // 1_000_000} MB)",
                                        type="filepath", height=90, elem_id="seed-file")
                    examples = gr.Examples([[str(p)] for p in EXAMPLES], inputs=seed_file,
                                           label="Example seeds",
                                           example_labels=[p.stem.replace("-", " ") for p in EXAMPLES])
                    seed_info = gr.Markdown(logic.describe_seed(None, UI.bars), elem_id="seed-info")
                    style = gr.Dropdown(logic.style_choices(GENERATOR.styles), value=UI.style,
                                        label="Style (composer)", elem_id="style")
                    with gr.Row():
                        bars = logic.slider("bars", value=UI.bars, elem_id="bars")
                        variations = logic.slider("variations", value=UI.variations, elem_id="variations")
                    end = gr.Checkbox(UI.end, label="End the piece", elem_id="end",
                                      info="the new bars close it, with a final cadence")
                    with gr.Row():
                        compose_btn = gr.Button("Compose", variant="primary", size="lg", elem_id="compose",
                                                scale=3)
                        stop_btn = gr.Button("Stop", variant="stop", size="lg", interactive=False,
                                             elem_id="stop", scale=1)
                    with gr.Accordion("Rewrite some bars", open=False, elem_id="infill-box"):
                        infill_source = gr.Radio([("of the seed", "seed"),
                                                  ("of the variation shown", "result")],
                                                 value="seed", label="Rewrite bars",
                                                 elem_id="infill-source")
                        with gr.Row(equal_height=True):
                            infill_bars = gr.Textbox(label="Bars", placeholder="9-12", value="", scale=2,
                                                     elem_id="infill-bars",
                                                     info="numbered as in the piece; shown on its roll")
                            rewrite_btn = gr.Button("Rewrite these bars", scale=1, elem_id="rewrite")
                        # the piece the rewrite works on: the seed or a variation (the API's first input)
                        infill_piece = gr.File(visible=False, type="filepath")
                    with gr.Accordion("Sampling", open=False):
                        seed_bars = logic.slider("seed_bars", value=UI.seed_bars,
                                                 info="the seed's last N bars; 0 = all")
                        temperature = logic.slider(
                            "temperature", value=UI.temperature,
                            info="lower: safer; higher: wilder; 0: always the likeliest note")
                        with gr.Row():
                            top_k = logic.slider("top_k", value=UI.top_k, info="0 = off")
                            top_p = logic.slider("top_p", value=UI.top_p, step=0.01)
                        with gr.Row():
                            greedy_mix = logic.slider("greedy_mix", value=UI.greedy_mix)
                            repetition_penalty = logic.slider("repetition_penalty",
                                                              value=UI.repetition_penalty)
                    with gr.Accordion("Random seed, tempo and sound", open=False):
                        with gr.Row():
                            random_seed = gr.Checkbox(value=True, label="Random seed",
                                                      info="untick to reproduce a result")
                            seed = logic.number("seed", value=UI.seed, precision=0)
                        with gr.Row():
                            tempo = logic.number("tempo", value=UI.tempo, info="0 = keep the seed's")
                            vary_tempo = gr.Checkbox(value=UI.vary_tempo, info="off: the seed's tempo holds",
                                                     label="Let the model vary the tempo")
                            soundfont = gr.Dropdown(list(SOUNDFONTS), value=FIRST_SOUNDFONT,
                                                    label="Soundfont")
                        with gr.Row():
                            key, meter = logic.key_and_meter(GENERATOR.grammar.meters)
                with gr.Column(scale=3, min_width=420):
                    status = gr.Markdown("Press **Compose** to hear what comes next.", elem_id="status")
                    whole_piece = gr.Checkbox(False, label="Show the whole piece", elem_id="whole-piece",
                                              info=f"off: the new bars and the {RENDER_SEED_BARS} seed bars "
                                                   "before them")
                    slots, tabs = [], []
                    with gr.Tabs() as tabset:
                        with gr.Tab("Seed", id="seed", elem_id="seed-tab"):
                            with gr.Column(elem_classes="player"):
                                seed_audio = gr.Audio(label="Seed", type="filepath", interactive=False,
                                                      buttons=[], elem_classes="result-audio",
                                                      waveform_options=NATIVE_PLAYER)
                                seed_roll = gr.Image(show_label=False, type="filepath", interactive=False,
                                                     buttons=[], elem_classes="result-roll")
                                seed_data = gr.HTML(elem_classes="seed-data", js_on_load=None)
                        for i in range(N):
                            with gr.Tab(f"Variation {i + 1}", id=i, visible=i == 0,
                                        elem_id=f"variation-{i + 1}") as tab:
                                tabs.append(tab)
                                with gr.Column(elem_classes="player"):
                                    style_line = gr.Markdown(elem_classes="result-style")
                                    audio = gr.Audio(label="Listen", type="filepath", format="mp3",
                                                     interactive=False, buttons=["download"],
                                                     elem_classes="result-audio",
                                                     waveform_options=NATIVE_PLAYER)
                                    roll = gr.Image(label="Piano roll", show_label=False, type="filepath",
                                                    interactive=False, buttons=[], elem_classes="result-roll")
                                    sheet = gr.HTML(label="Sheet music", show_label=True, container=True,
                                                    max_height=460, elem_classes="result-sheet",
                                                    js_on_load=None)
                                files = gr.File(label="Download: MIDI, MusicXML (MP3: the player's menu)",
                                                file_count="multiple", interactive=False,
                                                elem_classes="result-files")
                                wav_btn = gr.Button("Make a WAV to download", size="sm",
                                                    elem_classes="result-wav")
                                wav_btn.click(lambda h, sf, i=i: page.variation_wav(i, h, SOUNDFONTS.get(sf)),
                                              [history, soundfont], files, api_visibility="private")
                                slots += [audio, roll, sheet, files, style_line]
                    with gr.Row(equal_height=True):
                        continue_choice = gr.Radio(["1"], value="1", label="Variation", visible=False,
                                                   scale=2)
                        keep_btn = gr.Button("Keep this take", interactive=False, scale=1, elem_id="keep")
                        continue_btn = gr.Button("Continue from this result →", interactive=False, scale=1,
                                                 elem_id="continue")
                        send_btn = gr.Button("Send to Analyze", interactive=False, scale=1,
                                             elem_id="send-to-analyze")
                        undo_btn = gr.Button("↩ Undo", interactive=False, scale=1, elem_id="undo")
                    with gr.Accordion("Your piece", open=True, elem_id="piece"):
                        piece_status = gr.Markdown("Keep the takes you like: each one is added to your "
                                                   "piece, and **Compose** then continues the piece.",
                                                   elem_id="piece-status")
                        with gr.Column(visible=False) as piece_box:  # once there is a piece
                            with gr.Column(elem_classes="player"):
                                piece_audio = gr.Audio(label="Your piece", type="filepath", interactive=False,
                                                       buttons=["download"], elem_classes="result-audio",
                                                       waveform_options=NATIVE_PLAYER)
                                piece_roll = gr.Image(show_label=False, type="filepath", interactive=False,
                                                      buttons=[], elem_classes="result-roll")
                                piece_sheet = gr.HTML(label="Sheet music", show_label=True, container=True,
                                                      max_height=460, elem_classes="result-sheet",
                                                      js_on_load=None)
                            piece_files = gr.File(label="Download your piece: MIDI, MusicXML",
                                                  file_count="multiple", interactive=False,
                                                  elem_classes="result-files", elem_id="piece-files")
                            with gr.Row(equal_height=True):
                                piece_parts = gr.Dropdown([], label="Part", scale=3, elem_id="piece-parts")
                                remove_btn = gr.Button("Remove this part", scale=1, elem_id="remove-part")
                                piece_wav_btn = gr.Button("Make a WAV to download", scale=1,
                                                          elem_id="piece-wav")

        with gr.Tab("Analyze", id="analyze", elem_id="analyze-tab"):
            gr.Markdown("Which composer does a piano piece sound like? Upload a recording or a MIDI file "
                        "(MIDI is rendered with the piano soundfont first).")
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    analyze_file = gr.File(label="Recording or MIDI",
                                           file_types=list(AUDIO_SUFFIXES + MIDI_SUFFIXES),
                                           type="filepath", height=120, elem_id="analyze-file")
                    analyze_btn = gr.Button("Analyze", variant="primary", size="lg", elem_id="analyze")
                with gr.Column(scale=3, min_width=420):
                    verdict = gr.Markdown("Upload a piece and press **Analyze**.", elem_id="verdict")
                    # every class: the chart (and the API) show the whole distribution
                    probabilities = gr.Label(label="Sounds like", elem_id="probabilities")

    settings = [globals()[name] for name in SETTINGS]  # the components are named as the settings
    buttons = [compose_btn, stop_btn, keep_btn, continue_btn, send_btn, remove_btn, undo_btn, rewrite_btn,
               whole_piece]  # what busy() and idle() lock and unlock, in their order
    busy_outputs = [*buttons, tabset, *tabs]
    idle_outputs = [*buttons, tabset, *tabs, continue_choice]
    private = {"api_visibility": "private"}
    # progress shows on the status line only: the other outputs fill in as they are drawn, and an
    # error's badge sits where the next event clears it
    shown = {"show_progress": "minimal", "show_progress_on": [status]}
    long_events = []

    def job(trigger, fn, inputs, outputs, lock=None, locker=page.busy, locked=(), **kwargs):
        """Wire a long event: lock the buttons (`locker`, which may also set `locked`), run it (Stop
        cancels it), unlock them."""
        event = trigger(locker, lock, [*busy_outputs, *locked], queue=False, **private)
        # "multiple": a job started just after a Stop runs even while the page still waits for
        # the stopped one to be closed (the server lets the session start it at once)
        event = event.success(fn, inputs, outputs, trigger_mode="multiple", **kwargs)
        # Gradio 6.31's page runs .then() after success or Stop but not after an error: .failure() too
        for after in (event.then, event.failure):
            after(idle, history, idle_outputs, **private)
        long_events.append(event)
        return event

    results = [seed, status, *slots, history]
    job(compose_btn.click, generate, [seed_file, *settings, history], results, lock=variations,
        api_name="generate", **shown)
    job(continue_btn.click, continue_from, [continue_choice, *settings, history], [seed_file, *results],
        lock=variations, **shown, **private)
    job(whole_piece.input, switch_view, [whole_piece, history, soundfont], [status, *slots], **shown,
        **private)
    piece_outputs = [seed_file, piece_status, piece_audio, piece_roll, piece_sheet, piece_files, piece_parts,
                     piece_box, piece]
    piece_progress = {"show_progress": "minimal", "show_progress_on": [piece_status]}
    job(keep_btn.click, keep_take, [continue_choice, history, piece, soundfont], piece_outputs,
        **piece_progress, **private)
    job(remove_btn.click, remove_part, [piece_parts, piece, soundfont], piece_outputs, **piece_progress,
        **private)
    infill_inputs = [infill_piece, infill_bars, *[globals()[name] for name in INFILL_SETTINGS], history]
    job(rewrite_btn.click, infill, infill_inputs, results,
        lock=[infill_source, continue_choice, seed_file, history, variations], locker=page.rewrite_source,
        locked=[infill_piece], api_name="infill", **shown)
    stop_btn.click(stop, history, [status, *idle_outputs], cancels=long_events, queue=False, **private)
    undo_btn.click(page.undo, history, [seed_file, seed, status, *slots, whole_piece, history], **shown,
                   **private).then(idle, history, idle_outputs, **private)
    piece_wav_btn.click(lambda pc, sf: page.piece_wav(pc, SOUNDFONTS.get(sf)), [piece, soundfont],
                        piece_files, **private)
    analyze_btn.click(classify, analyze_file, [probabilities, verdict], api_name="classify")
    send_btn.click(send_to_analyze, [continue_choice, history], [analyze_file, main_tabs],
                   **private).success(classify, analyze_file, [probabilities, verdict], **private)
    gr.on([seed_file.change, bars.change, tempo.change, meter.change], logic.describe_seed,
          [seed_file, bars, tempo, meter], seed_info, queue=False, show_progress="hidden", **private)
    # the seed to hear and see before composing: on an upload or an example, not when a result
    # or the piece becomes the seed (those are in their own players already)
    preview = {"concurrency_id": "preview", "concurrency_limit": 1, "show_progress": "minimal",
               "show_progress_on": [status], **private}
    preview_outputs = [seed_audio, seed_roll, seed_data, status, tabset]
    for trigger in (seed_file.upload, seed_file.clear, examples.load_input_event.then):
        trigger(lambda path, sf: page.seed_preview(path, SOUNDFONTS.get(sf)), [seed_file, soundfont],
                preview_outputs, **preview)

# Beyond CONCURRENT_JOBS running and MAX_QUEUE waiting, a request is told at once that the app is
# busy; a second request from a session whose first still runs is turned away by its handler.
demo.queue(default_concurrency_limit=logic.CONCURRENT_JOBS, max_size=logic.MAX_QUEUE)

if __name__ == "__main__":
    # show_error: Gradio's own refusals before a handler runs (a seed path that was never uploaded,
    # a malformed API payload) reach the caller as a sentence instead of nothing; every handler
    # turns its own failures into a user's sentence (logic.user_errors), so no traceback leaks
    demo.launch(max_file_size=MAX_UPLOAD_BYTES, theme=gr.themes.Soft(), css=CSS, js=PLAYHEAD_JS,
                show_error=True)
