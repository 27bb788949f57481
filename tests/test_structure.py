"""The package's shape: no import circles, no module over 400 lines, every documented command and
flag still exists, and a wheel (a non-editable install) finds its model and generates."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "musicgen"
MAX_LINES = 400
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "soundfonts" / "README.md"]
# A documented command: `musicgen ...`, `python -m musicgen[.module] ...` or `python scripts/x.py ...`
COMMAND = re.compile(r"(?:python -m (musicgen(?:\.\w+)?)|(?<![\w/.\-])(musicgen) (?=[a-z])"
                     r"|python (scripts/\w+\.py))(.*)")
OLD_VERSION = "v0.1-experiments"  # a command written with this tag on its line runs at that tag


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_of(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules a file imports anywhere (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found - {module_of(path)}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circles():
    modules = package_modules()
    graph = {m: imports_of(p, modules) for m, p in modules.items()}
    assert "musicgen.evaluate" in graph["musicgen.train"]  # the graph sees real edges
    assert circles(graph) == []


def test_circles_are_found_when_there_are_some():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in [*PACKAGE.rglob("*.py"), ROOT / "app.py"]}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def documented_commands() -> list[tuple[str, list[str], str]]:
    """(program, words after it, where) of every command in the README and docs; backslash
    continuations joined, comments and stand-ins (`...`, `[--flags]`) left out."""
    out = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        for n, line in enumerate(text.splitlines(), 1):
            for span in re.findall(r"`([^`]+)`", line) or [line]:
                if OLD_VERSION in line:
                    continue
                for m in COMMAND.finditer(span):
                    program = m.group(1) or m.group(2) or m.group(3)
                    rest = re.split(r"\s#|&&|;|\|", m.group(4))[0]
                    try:
                        words = shlex.split(rest)
                    except ValueError:
                        words = rest.split()
                    out.append((program, words, f"{doc.relative_to(ROOT)}:{n}"))
    return out


def help_text(program: str, path: list[str]) -> str:
    """What `program path... --help` prints, run in this process (argparse exits 0)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as stop:
        if program.startswith("scripts/"):
            argv = sys.argv
            sys.argv = [program, "--help"]
            try:
                runpy.run_path(str(ROOT / program), run_name="__main__")
            finally:
                sys.argv = argv
        else:
            main = importlib.import_module("musicgen.cli" if program == "musicgen" else program).main
            main([*path, "--help"])
    assert stop.value.code == 0, f"{program} {' '.join(path)} --help exited {stop.value.code}"
    return buf.getvalue()


def subcommand_path(parser, words: list[str]) -> list[str]:
    """The leading words that name (nested) subcommands of an argparse parser."""
    path = []
    while True:
        choices = next((a.choices for a in parser._actions if isinstance(a.choices, dict)), {})
        if len(words) <= len(path) or words[len(path)] not in choices:
            return path
        parser = choices[words[len(path)]]
        path.append(words[len(path)])


def test_every_documented_command_and_flag_exists():
    from musicgen.cli import build_parser

    commands = [c for c in documented_commands() if c[1] or c[0] != "musicgen"]  # not a bare mention
    assert len(commands) > 40  # the docs were read
    helps, missing = {}, []
    for program, words, where in commands:
        path = subcommand_path(build_parser(), words) if program == "musicgen" else []
        if program == "musicgen" and not path:
            missing.append(f"{where}: musicgen {words[0]} is no subcommand")
            continue
        key = (program, tuple(path))
        if key not in helps:
            helps[key] = help_text(program, path)
        for flag in (w.split("=")[0] for w in words if w.startswith("--") and w != "--help"):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[key]):
                missing.append(f"{where}: {program} {' '.join(path)} has no {flag}")
    assert missing == []


def test_a_wheel_installed_elsewhere_generates_valid_piano_midi_with_the_shipped_model(tmp_path):
    """`pip install .` without -e: the model, critic, examples and soundfont travel inside the wheel,
    and `musicgen generate` run from another folder uses them."""
    from musicgen import tokenizer as tk

    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), *map(str, wheels.glob("*.whl"))],
                   check=True, timeout=300, capture_output=True)
    out = tmp_path / "elsewhere" / "out.mid"
    out.parent.mkdir()
    code = ("import musicgen.resources as r, sys; from musicgen.cli import main; print(r.MODEL_DIR); "
            "sys.exit(main(['generate', '--bars', '8', '--seed', '1', '--out', 'out.mid']))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=out.parent, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(target / "musicgen" / "assets" / "model")
    assert "tok/s" in proc.stdout
    score = tk.read_midi(out)
    assert score.note_num() > 8
    assert len({n.pitch for n in score.tracks[0].notes}) > 3
    assert all(21 <= n.pitch <= 108 for n in score.tracks[0].notes)
    assert {p.name for p in (target / "musicgen" / "assets").iterdir()} == {"model", "classifier", "examples"}
    assert (target / "musicgen" / "soundfonts" / "fluidr3-grand-piano.sf2").is_file()
