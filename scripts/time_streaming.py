"""How soon the app's results appear: starts `python app.py` on a free loopback port, composes
from a seed and times each streamed update of the `generate` endpoint (or, with --browser, what
headless Chromium shows after a click on Compose).

    python scripts/time_streaming.py --seed assets/examples/bach-chorale-bwv66.mid --bars 16 --variations 2
    python scripts/time_streaming.py --seed ../shared/data/piano-midi-de/chopin/chpn_op10_e12.mid \
        --bars 32 --variations 4 --browser

Prints, per run and as the median of --repeat runs, the seconds from the request (or the click)
to: the MIDI (and status), the first piano roll, every roll, the first playable audio, all the
audio, all the sheet music, and everything (the style verdicts last).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# the generate endpoint's parameters after the seed (each request sends those its app takes)
ORDER = ["style", "seed_bars", "bars", "variations", "temperature", "top_k", "top_p", "greedy_mix",
         "repetition_penalty", "random_seed", "seed", "tempo", "soundfont", "vary_tempo", "whole_piece",
         "end"]
APP_OWN = {"random_seed": False, "soundfont": "fluidr3-grand-piano", "whole_piece": False}
PER_SLOT, N_SLOTS = 5, 4  # (audio, roll, sheet, downloads, style line) per variation slot
MARKS = ("midi", "first roll", "all rolls", "first audio", "all audio", "all sheets", "everything")


def launch(env_extra: dict, checkout: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`python app.py` of a checkout (its own package first on the path) on a free port; its URL
    once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(checkout), **env_extra}
    log = tempfile.NamedTemporaryFile("w+", prefix="app-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=checkout, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the app did not start; its log: {log.name}")


def marks_of(data: list, n: int) -> set[str]:
    """Which of MARKS one streamed update shows, for n variations."""
    slots = [data[2 + PER_SLOT * i: 2 + PER_SLOT * (i + 1)] for i in range(n)]
    audio = [s[0] is not None for s in slots]
    rolls = [s[1] is not None for s in slots]
    sheets = ["<svg" in (s[2] or "") for s in slots]
    files = [str(f.get("path") if isinstance(f, dict) else f) for s in slots for f in s[3] or []]
    found = {"midi"} if any(f.endswith(".mid") for f in files) else set()
    found |= {"first roll"} if any(rolls) else set()
    found |= {"all rolls"} if all(rolls) else set()
    found |= {"first audio"} if any(audio) else set()
    found |= {"all audio"} if all(audio) else set()
    found |= {"all sheets"} if all(sheets) else set()
    return found


def api_run(url: str, seed: Path, settings: dict) -> dict[str, float]:
    """One request over plain HTTP: seconds from the POST to each mark."""
    with httpx.Client(timeout=300) as http:
        files = {"files": (seed.name, seed.read_bytes())}
        uploaded = http.post(f"{url}gradio_api/upload", files=files).json()[0]
        data = [{"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": seed.name}]
        params = http.get(f"{url}gradio_api/info").json()["named_endpoints"]["/generate"]["parameters"]
        data += [settings[p["parameter_name"]] for p in params[1:]]  # what this checkout's app takes
        start = time.perf_counter()
        event = http.post(f"{url}gradio_api/call/generate", json={"data": data}).json()["event_id"]
        seen: dict[str, float] = {}
        with http.stream("GET", f"{url}gradio_api/call/generate/{event}") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(": ", 1)[1]
                elif line.startswith("data:") and kind in ("generating", "complete"):
                    now = time.perf_counter() - start
                    for mark in marks_of(json.loads(line.split(": ", 1)[1]), settings["variations"]):
                        seen.setdefault(mark, now)
                    if kind == "complete":
                        seen["everything"] = now
                elif line.startswith("data:") and kind == "error":
                    raise SystemExit(f"the request failed: {line}")
    return seen


def browser_run(page, url: str, seed: Path, settings: dict) -> dict[str, float]:
    """One click on Compose in Chromium: seconds from the click to each mark as the page shows it."""
    page.goto(url)
    page.locator("#seed-file input[type=file]").set_input_files(seed)
    page.wait_for_selector("#status:has-text('ready')", timeout=120_000)
    for name in ("bars", "variations"):
        box = page.locator(f"#{name} input[type=number]")
        box.fill(str(settings[name]))
        box.press("Enter")
    page.wait_for_timeout(500)
    checks = {  # each mark as a condition on the page, tested in one script per animation frame
        "midi": "[...document.querySelectorAll('#variation-1 .result-files a')]"
                ".some(a => a.download.endsWith('.mid'))",
        "first roll": "!!document.querySelector('#variation-1 .result-roll img')",
        "first audio": "!!document.querySelector('#variation-1 audio[src]')",
        "everything": "/^Done\\./.test(document.querySelector('#status').innerText.trim())",
    }
    page.evaluate("""checks => { window.__marks = {};
        window.__start = () => { const t0 = performance.now(); const loop = () => {
            for (const [k, js] of Object.entries(checks)) if (!(k in window.__marks) && eval(js))
                window.__marks[k] = (performance.now() - t0) / 1000;
            if (!('everything' in window.__marks)) requestAnimationFrame(loop); }; loop(); }; }""", checks)
    page.evaluate("window.__start()")
    page.locator("#compose").click()
    page.wait_for_function("'everything' in window.__marks", timeout=300_000, polling=200)
    return page.evaluate("window.__marks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=ROOT / "assets" / "examples" / "bach-chorale-bwv66.mid")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--variations", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="time what Chromium shows after a click")
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="time the app.py of another checkout (e.g. a git worktree of an older commit)")
    args = parser.parse_args()
    from musicgen.sample import SampleConfig  # the app's defaults are the sampler's

    defaults = {k: v for k, v in vars(SampleConfig()).items() if k in ORDER}
    settings = {**defaults, **APP_OWN, "bars": args.bars, "variations": args.variations}
    folder = tempfile.mkdtemp(prefix="musicgen-timing-")
    proc, url = launch({"GRADIO_TEMP_DIR": folder}, args.checkout.resolve())
    runs = []
    try:
        api_run(url, args.seed, {**settings, "seed": 999})  # warm-up: the first request loads the critic
        if args.browser:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                for i in range(args.repeat):
                    runs.append(browser_run(page, url, args.seed, {**settings, "seed": i}))
                    print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()))
                browser.close()
        else:
            for i in range(args.repeat):
                runs.append(api_run(url, args.seed, {**settings, "seed": i}))
                print(f"run {i + 1}: " + ", ".join(f"{k} {runs[-1][k]:.2f} s" for k in MARKS
                                                   if k in runs[-1]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"median of {len(runs)} ({args.seed.name}, {args.bars} bars x {args.variations}, "
          f"{'browser' if args.browser else 'API'}): "
          + ", ".join(f"{k} {statistics.median(r[k] for r in runs):.2f} s" for k in MARKS
                      if all(k in r for r in runs)))


if __name__ == "__main__":
    main()
