"""`python -m musicgen bench`: generation speed against its ceiling and the seed paper's way,
the whole seed -> MIDI + WAV + SVG + PNG path, audio speed and cold start, on one machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from musicgen.checkpoint import DEFAULT_CHECKPOINT
from musicgen.model import BiGRUWindow, ModelConfig
from musicgen.resources import EXAMPLES_DIR

EXAMPLES = EXAMPLES_DIR


def example_seed() -> Path:
    """The first shipped example seed."""
    seeds = sorted(EXAMPLES.glob("*.mid"))
    if not seeds:
        raise FileNotFoundError(f"no example seeds in {EXAMPLES}")
    return seeds[0]


@torch.no_grad()
def gru_ceiling(step, device: str, steps: int, batch: int = 1) -> float:
    """Tokens/s of the bare generator step (embedding, GRU, head) fed a fixed token: no sampling."""
    idx = torch.zeros(batch, dtype=torch.long, device=device)
    h = None
    for _ in range(20):
        _, h = step(idx, h)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, h = step(idx, h)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


@torch.no_grad()
def bigru_window_speed(cfg: ModelConfig, device: str, steps: int, batch: int = 1) -> float:
    """Tokens/s of the seed paper's generator: re-read a 40-token window for every token."""
    model = BiGRUWindow(cfg, window=40).to(device).eval()
    window = torch.zeros(batch, 40, dtype=torch.long, device=device)
    for _ in range(5):
        model.step(window)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        logits, _ = model.step(window)
        nxt = logits.argmax(-1, keepdim=True)
        window = torch.cat([window[:, 1:], nxt], dim=1)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def generation_speed(gen, seed: Path, batch: int, repeats: int, bars: int = 16) -> float:
    """Median new tokens/s of the sampling loop (GRU step, grammar, top-p) for `batch` variations."""
    from musicgen.sample import SampleConfig

    rates = []
    for r in range(repeats):
        res = gen.generate(seed, SampleConfig(bars=bars, variations=batch, seed=r))
        rates.append(res.new_tokens / res.sample_seconds)
    return statistics.median(rates)


def generation_and_ceiling(gen, seed: Path, repeats: int) -> tuple[float, float]:
    """Batch-1 generation (16 bars) and the bare step for as many tokens, measured in turns so
    that a noisy neighbour or a clock change slows both alike; the median of each."""
    from musicgen.sample import SampleConfig

    gens, ceilings = [], []
    for r in range(repeats):
        res = gen.generate(seed, SampleConfig(bars=16, seed=r))
        gens.append(res.new_tokens / res.sample_seconds)
        ceilings.append(gru_ceiling(gen.step, "cpu", res.new_tokens))
    return statistics.median(gens), statistics.median(ceilings)


def end_to_end(gen, seed: Path, repeats: int) -> tuple[float, dict[str, float], float]:
    """Median seconds of seed -> 16 bars -> MIDI + WAV + SVG + PNG, its stages, and the audio
    render alone (x real time, the synthesis not sharing the CPU with the other stages)."""
    from musicgen.render import render_all, render_audio
    from musicgen.sample import SampleConfig
    from musicgen.tokenizer import tick_to_seconds

    totals, stages, speed = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(repeats):
            t0 = time.perf_counter()
            res = gen.generate(seed, SampleConfig(bars=16, seed=r))
            t_gen = time.perf_counter() - t0
            t1 = time.perf_counter()
            (out / "out.mid").write_bytes(res.midi_bytes()[0])
            t_midi = time.perf_counter() - t1
            times = render_all(res.scores[0], wav=out / "out.wav", svg=out / "out.svg",
                               roll=out / "out.png", split_tick=res.split_tick)
            totals.append(time.perf_counter() - t0)
            stages.append({"generate": t_gen, "midi": t_midi, **times})
            music = res.scores[0]
            t2 = time.perf_counter()
            render_audio(music)
            seconds = float(tick_to_seconds(music, np.array([music.end()]))[0])
            speed.append(seconds / (time.perf_counter() - t2))
    median = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    return statistics.median(totals), median, statistics.median(speed)


def cold_start(checkpoint: str, compile_draw: bool = False) -> float:
    """Seconds from a new interpreter to a loaded generator (imports + weights). Normally numba's
    cache holds the compiled draw; compile_draw points numba at an empty cache, as on the first
    start after an install."""
    code = ("from musicgen.sample import load_generator; "
            f"load_generator({checkpoint!r}, 'cpu')")
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "NUMBA_CACHE_DIR": empty} if compile_draw else None
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - t0


def run_bench(quick: bool = False, checkpoint: str | Path = DEFAULT_CHECKPOINT) -> dict:
    """Measure everything on this machine, print a table, return the JSON-ready report."""
    from musicgen.sample import Generator

    checkpoint = str(checkpoint)
    repeats = 3 if quick else 7
    steps = 500 if quick else 2000
    seed = example_seed()
    first = cold_start(checkpoint, compile_draw=True)
    cold = cold_start(checkpoint)
    gen = Generator(checkpoint, "cpu")
    warm = gen.generate(seed)  # warm-up: first calls allocate
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                               f"{torch.get_num_threads()} torch thread(s), {platform.system()}",
                    "torch": torch.__version__, "quick": quick, "cold_start_s": cold,
                    "cold_start_compiling_s": first}
    report["model"] = {k: v for k, v in vars(gen.model.cfg).items() if k != "pad_id"}
    report["prime_s"] = warm.prime_seconds
    report["prime_tokens"] = len(warm.tokens[0]) - warm.new_tokens + 1  # seed + the style token
    b1, ceiling = generation_and_ceiling(gen, seed, 5 * repeats)
    report["gen_tok_s_b1"], report["gru_step_ceiling_tok_s"] = b1, ceiling
    report["gen_tok_s_b4"] = generation_speed(gen, seed, 4, repeats)
    report["sampling_overhead"] = 1 - report["gen_tok_s_b1"] / report["gru_step_ceiling_tok_s"]
    report["bigru_window_tok_s"] = bigru_window_speed(gen.model.cfg, "cpu", steps // 10)
    report["speedup_vs_bigru_window"] = report["gen_tok_s_b1"] / report["bigru_window_tok_s"]
    e2e, stages, audio_x = end_to_end(gen, seed, repeats)
    report["e2e_16bars_s"], report["e2e_stages_s"], report["audio_x_realtime"] = e2e, stages, audio_x
    if torch.cuda.is_available():
        report["cuda"] = cuda_bench(checkpoint, seed, repeats, steps)
    print_report(report)
    return report


def cuda_bench(checkpoint: str, seed: Path, repeats: int, steps: int) -> dict:
    """The generation numbers on the GPU, with batches of 16 and 64 variations too."""
    from musicgen.sample import Generator

    gen = Generator(checkpoint, "cuda")
    gen.generate(seed)
    out = {"device": torch.cuda.get_device_name()}
    for b in (1, 4, 16, 64):
        out[f"gen_tok_s_b{b}"] = generation_speed(gen, seed, b, repeats)
    out["gru_step_ceiling_tok_s"] = gru_ceiling(gen.step, "cuda", steps)
    out["bigru_window_tok_s"] = bigru_window_speed(gen.model.cfg, "cuda", steps // 10)
    return out


def print_report(r: dict) -> None:
    """The numbers a reader wants, one per line."""
    print(f"machine: {r['machine']}, torch {r['torch']}")
    rows = [("cold start (imports + model load)", f"{r['cold_start_s']:.2f} s", "<= 8 s"),
            ("  the same, compiling the draw", f"{r['cold_start_compiling_s']:.2f} s", "<= 8 s"),
            ("priming the seed", f"{r['prime_tokens']} tok in {1000 * r['prime_s']:.0f} ms", ""),
            ("generation, batch 1", f"{r['gen_tok_s_b1']:,.0f} tok/s", ""),
            ("generation, batch 4", f"{r['gen_tok_s_b4']:,.0f} tok/s", ""),
            ("bare GRU step ceiling, batch 1", f"{r['gru_step_ceiling_tok_s']:,.0f} tok/s", ""),
            ("sampling overhead", f"{100 * r['sampling_overhead']:.1f} %", "<= 15 %"),
            ("window BiGRU (seed paper)", f"{r['bigru_window_tok_s']:,.0f} tok/s", ""),
            ("speed-up vs window BiGRU", f"{r['speedup_vs_bigru_window']:.1f} x", ">= 20 x"),
            ("end to end, 16 bars (median)", f"{r['e2e_16bars_s']:.2f} s", "<= 2.0 s"),
            ("audio render", f"{r['audio_x_realtime']:.0f} x real time", ">= 50 x")]
    for name, value, target in rows:
        print(f"  {name:<34} {value:>16}   {target}")
    print("  stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["e2e_stages_s"].items()))
    if "cuda" in r:
        print("  cuda: " + ", ".join(f"{k} {v:,.0f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in r["cuda"].items()))
