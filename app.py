"""musicgen web app: continue a piano MIDI (or compose from scratch) with a GRU, hear it, read it,
and ask the style classifier which composer a recording or MIDI sounds like.

`python app.py` serves it on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860).
The `generate` API endpoint takes the seed MIDI file first (None: from scratch); every
other parameter has a default. The `classify` endpoint takes one audio or MIDI file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr

from musicgen import app_logic as logic
from musicgen.critic import AUDIO_SUFFIXES, classify_file, load_classifier, sounds_like
from musicgen.errors import MusicgenError
from musicgen.render import list_soundfonts
from musicgen.resources import EXAMPLES_DIR
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
CSS = """
.sheet { background: white; border-radius: 6px; padding: 4px; }
.sheet svg { max-width: 100%; height: auto; }
#status { min-height: 2.5em; }
"""


def compose(seed, cfg: SampleConfig):
    """Sample the continuations (the only step that wants a GPU)."""
    return load_generator().generate(seed, cfg)


if spaces is not None and os.environ.get("SPACES_ZERO_GPU"):
    compose = spaces.GPU(duration=120)(compose)


def variation_values(result: logic.Result | None) -> list:
    """Audio, roll, sheet and downloads for each of the N variation slots (empty when unused)."""
    values = []
    for i in range(N):
        v = result.variations[i] if result and i < len(result.variations) else None
        if v is None:
            values += [None, None, "", None, ""]
        else:
            values += [v.mp3 and str(v.mp3), v.roll and str(v.roll), logic.sheet_html(v.svg), v.downloads(),
                       v.sounds_like]
    return values


# The form's settings, in the order of the generate endpoint's parameters after the seed MIDI; all
# but random_seed and soundfont (the app's own) are SampleConfig fields.
SETTINGS = ("style", "seed_bars", "bars", "variations", "temperature", "top_k", "top_p", "greedy_mix",
            "repetition_penalty", "random_seed", "seed", "tempo", "soundfont", "vary_tempo")


def run(seed_midi, form: dict, progress) -> logic.Result:
    """Check, compose and render one request into its own temp folder."""
    soundfont = form["soundfont"]
    if soundfont and soundfont not in SOUNDFONTS:
        raise MusicgenError(f"unknown soundfont {soundfont!r}; choose one of: {', '.join(SOUNDFONTS)}")
    for name, label in (("random_seed", "Random seed"), ("vary_tempo", "Let the model vary the tempo")):
        if not isinstance(form[name], bool):
            raise MusicgenError(f"{label} ({name}) must be true or false, not {form[name]!r}")
    knobs = {k: logic.form_value(k, v) for k, v in form.items() if k in logic.FORM}  # API callers too
    score = logic.read_seed(seed_midi)
    used_seed = logic.pick_seed(form["random_seed"], knobs.pop("seed"))
    cfg = SampleConfig(**knobs, style=form["style"], seed=used_seed, vary_tempo=form["vary_tempo"])
    progress(0.05, desc=f"Composing {cfg.bars} bars × {cfg.variations}")
    gen = compose(score, cfg)
    progress(0.3, desc="Rendering audio, sheet music and piano roll")
    stem = logic.output_stem(seed_midi, cfg.style)
    title = f"{stem}, continued" if score is not None else f"From scratch, style: {cfg.style}"
    made = logic.render_variations(gen.scores, gen.split_tick, logic.new_request_dir(), stem, title,
                                   SOUNDFONTS.get(soundfont), progress)
    empty = [str(i + 1) for i, v in enumerate(made) if v.svg is None]
    status = f"**Done.** {gen.describe()}; random seed {used_seed}"
    if any(v.shown_split != gen.split_tick for v in made if v.shown is not None):
        status += (f"; you hear and see the new bars from {logic.RENDER_SEED_BARS} bars before them, "
                   "the MIDI holds the whole piece")
    if empty:
        status += f"; variation {', '.join(empty)} came out without notes: try another seed"
    return logic.Result(seed_midi, made, status, used_seed)


def generate(seed_midi=None, style=UI.style, seed_bars=UI.seed_bars, bars=UI.bars,
             variations=UI.variations, temperature=UI.temperature, top_k=UI.top_k, top_p=UI.top_p,
             greedy_mix=UI.greedy_mix, repetition_penalty=UI.repetition_penalty, random_seed=True,
             seed=UI.seed, tempo=UI.tempo, soundfont=FIRST_SOUNDFONT, vary_tempo=UI.vary_tempo,
             history=None, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
    """Continue the seed MIDI (None: compose from scratch) and render every variation."""
    form = {k: v for k, v in locals().items() if k in SETTINGS}  # the API names its parameters
    with logic.one_job_per_session(request and request.session_hash):
        return compose_and_show(seed_midi, form, history, progress)


def compose_and_show(seed_midi, form: dict, history, progress) -> list:
    """One request's outputs: the seed used, the status, each variation's slot, the history."""
    with logic.user_errors():
        result = run(seed_midi, form, progress)
    history = history or logic.History()
    history.push(result)
    return [result.random_seed, result.status, *variation_values(result), history]


def continue_from(choice, *form_and_history, request: gr.Request = None,
                  progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
    """Make the chosen variation the new seed and continue it with the form's settings."""
    *values, history = form_and_history
    if history is None or history.current is None:
        raise gr.Error("Generate something first, then continue from it.")
    chosen = history.chosen(choice)
    with logic.one_job_per_session(request and request.session_hash):
        outputs = compose_and_show(str(chosen.midi), dict(zip(SETTINGS, values)), history, progress)
    return [str(chosen.midi), *outputs]


def make_wav(slot: int, history, soundfont=FIRST_SOUNDFONT):
    """Write the WAV of one variation (on request: WAV is most of a result's bytes) and list it."""
    if history is None or history.current is None or slot >= len(history.current.variations):
        raise gr.Error("Generate something first.")
    v = history.current.variations[slot]
    with logic.user_errors("writing the WAV"):
        logic.make_wav(v, SOUNDFONTS.get(soundfont))
    return v.downloads()


def undo(history):
    """Go back to the previous result and its seed."""
    with logic.user_errors("undoing"):
        result = (history or logic.History()).undo()
    status = f"**Back to the previous result.** {result.status.removeprefix('**Done.** ')}"
    return [result.seed_midi, result.random_seed, status, *variation_values(result), history]


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
        raise gr.Error("Generate something first, then analyze it.")
    return str(history.chosen(choice).midi), gr.Tabs(selected="analyze")


def show_layout(history):
    """One tab per variation made, the continue choices to match, Undo only when it can."""
    n = len(history.current.variations) if history and history.current else 0
    tabs = [gr.Tab(visible=i < max(n, 1)) for i in range(N)]
    choices = [str(i + 1) for i in range(max(n, 1))]
    return [gr.Tabs(selected=0), *tabs,
            gr.Radio(choices=choices, value="1", visible=n > 1),
            gr.Button(interactive=n > 0),
            gr.Button(interactive=n > 0),
            gr.Button(interactive=bool(history and history.past))]


with gr.Blocks(title="musicgen: GRU piano composer", analytics_enabled=False,
               delete_cache=(3600, logic.MAX_AGE_SEC)) as demo:
    # kept 6 h after its last change (the files it points to expire then too), also for API
    # clients that never close a tab: sessions cannot pile up in memory
    history = gr.State(None, time_to_live=logic.MAX_AGE_SEC)
    gr.Markdown("# musicgen · a GRU piano composer\n"
                "Upload a piano MIDI (or pick an example) and the model continues it; leave the seed "
                "empty to compose from scratch in a composer's style. "
                f"Runs on **{GENERATOR.device}**.")
    with gr.Tabs() as main_tabs:
        with gr.Tab("Compose", id="compose", elem_id="compose-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    seed_file = gr.File(label=f"Seed MIDI (optional, up to {MAX_MIDI_BYTES // 1_000_000} MB)",
                                        file_types=[".mid", ".midi"], type="filepath", height=120,
                                        elem_id="seed-file")
                    gr.Examples([[str(p)] for p in EXAMPLES], inputs=seed_file, label="Example seeds",
                                example_labels=[p.stem.replace("-", " ") for p in EXAMPLES])
                    seed_info = gr.Markdown(logic.describe_seed(None, UI.bars), elem_id="seed-info")
                    style = gr.Dropdown(logic.style_choices(GENERATOR.styles), value=UI.style,
                                        label="Style (composer)",
                                        info="steers both continuations and from-scratch pieces")
                    with gr.Row():
                        bars = logic.slider("bars", value=UI.bars, elem_id="bars")
                        seed_bars = logic.slider("seed_bars", value=UI.seed_bars,
                                                        info="the seed's last N bars; 0 = all")
                    variations = logic.slider("variations", value=UI.variations, elem_id="variations",
                                              info="one request at a time per browser tab")
                    with gr.Accordion("Sampling", open=False):
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
                    generate_btn = gr.Button("Compose", variant="primary", size="lg", elem_id="compose")
                with gr.Column(scale=3, min_width=420):
                    status = gr.Markdown("Press **Compose** to hear what comes next.", elem_id="status")
                    slots, tabs = [], []
                    with gr.Tabs() as tabset:
                        for i in range(N):
                            with gr.Tab(f"Variation {i + 1}", id=i, visible=i == 0,
                                        elem_id=f"variation-{i + 1}") as tab:
                                tabs.append(tab)
                                style_line = gr.Markdown(elem_classes="result-style")
                                audio = gr.Audio(label="Listen", type="filepath", format="mp3",
                                                 interactive=False, buttons=["download"],
                                                 elem_classes="result-audio")
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
                                wav_btn.click(make_wav, [gr.State(i), history, soundfont], files,
                                              api_visibility="private")
                                slots += [audio, roll, sheet, files, style_line]
                    with gr.Row(equal_height=True):
                        continue_choice = gr.Radio(["1"], value="1", label="Continue from variation",
                                                   visible=False, scale=2)
                        continue_btn = gr.Button("Continue from this result →", interactive=False, scale=1,
                                                 elem_id="continue")
                        send_btn = gr.Button("Send to Analyze", interactive=False, scale=1,
                                             elem_id="send-to-analyze")
                        undo_btn = gr.Button("↩ Undo", interactive=False, scale=1, elem_id="undo")

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
    layout = [tabset, *tabs, continue_choice, continue_btn, send_btn, undo_btn]
    generate_btn.click(generate, [seed_file, *settings, history], [seed, status, *slots, history],
                       api_name="generate").then(show_layout, history, layout, api_visibility="private")
    continue_btn.click(continue_from, [continue_choice, *settings, history],
                       [seed_file, seed, status, *slots, history], api_visibility="private").then(
        show_layout, history, layout, api_visibility="private")
    undo_btn.click(undo, history, [seed_file, seed, status, *slots, history], api_visibility="private").then(
        show_layout, history, layout, api_visibility="private")
    analyze_btn.click(classify, analyze_file, [probabilities, verdict], api_name="classify")
    send_btn.click(send_to_analyze, [continue_choice, history], [analyze_file, main_tabs],
                   api_visibility="private").success(classify, analyze_file, [probabilities, verdict],
                                                     api_visibility="private")
    gr.on([seed_file.change, bars.change, tempo.change], logic.describe_seed,
          [seed_file, bars, tempo], seed_info, queue=False, show_progress="hidden", api_visibility="private")

# Beyond CONCURRENT_JOBS running and MAX_QUEUE waiting, a request is told at once that the app is
# busy; a second request from a session whose first still runs is turned away by its handler.
demo.queue(default_concurrency_limit=logic.CONCURRENT_JOBS, max_size=logic.MAX_QUEUE)

if __name__ == "__main__":
    # show_error: Gradio's own refusals before a handler runs (a seed path that was never uploaded,
    # a malformed API payload) reach the caller as a sentence instead of nothing; every handler
    # turns its own failures into a user's sentence (logic.user_errors), so no traceback leaks
    demo.launch(max_file_size=MAX_UPLOAD_BYTES, theme=gr.themes.Soft(), css=CSS, show_error=True)
