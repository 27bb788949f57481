"""The command line: the shipped model generates offline; errors are one line, not a traceback."""

import subprocess
import sys

import pytest
from conftest import tiny_piece, write_score

from musicgen import tokenizer as tk
from musicgen.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musicgen", *args], capture_output=True, text=True,
                          timeout=300)


def test_generate_variations_and_only_continuation(tmp_path):
    seed = write_score(tiny_piece(bars=4), tmp_path / "seed.mid")
    out = tmp_path / "out.mid"
    assert main(["generate", "--seed-midi", str(seed), "--bars", "2", "--seed", "7", "--variations", "2",
                 "--temperature", "0.9", "--top-p", "0.95", "--out", str(out)]) == 0
    full, second = tk.read_midi(out), tk.read_midi(tmp_path / "out-2.mid")
    assert full.note_num() > tiny_piece(bars=4).note_num() and second.note_num() > 0
    assert main(["generate", "--seed-midi", str(seed), "--bars", "2", "--seed", "7",
                 "--only-continuation", "--out", str(tmp_path / "new.mid")]) == 0
    new = tk.read_midi(tmp_path / "new.mid")
    assert 0 < new.note_num() < full.note_num()


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("text, not MIDI"), "not a MIDI file"),
])
def test_bad_seed_is_one_line_error(tmp_path, setup, message):
    seed = tmp_path / "seed.mid"
    setup(seed)
    proc = run_cli("generate", "--seed-midi", str(seed), "--out", str(tmp_path / "o.mid"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_flags_are_errors():
    proc = run_cli("train", "--no-such-flag", "1")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
