# Two commands do everything on a fresh Debian/Ubuntu machine: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: run test setup fluidsynth chromium lint clean

run: setup fluidsynth
	$(PY) app.py

test: setup fluidsynth chromium
	$(PY) -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The synthesizer's shared library, where missing (pyfluidsynth loads it at run time).
fluidsynth:
	@ldconfig -p | grep -q 'libfluidsynth\.so' || { $(APT) update -q && $(APT) install -y -q libfluidsynth3; }

# Debian's Chromium for the browser test (Playwright drives it; it downloads no browser).
chromium:
	@command -v chromium >/dev/null || { $(APT) update -q && $(APT) install -y -q chromium; }

lint: setup
	$(VENV)/bin/ruff check musicgen tests app.py scripts

clean:
	rm -rf $(VENV) .pytest_cache
