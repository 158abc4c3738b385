# The two commands a newcomer needs: `make run` and `make test`.
# Both bootstrap .venv on first use (and again when the lock changes): every package,
# indirect ones included, at the version and with the hashes requirements/dev.txt locks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/dev.txt
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: run test test-fast lint bench lock mobile clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "winkit needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r $(LOCK)
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/winkit run

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The tests that need no server (domain rules, the app's view state, the deployment files),
# in seconds; `make test` runs them too, with everything else.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

# The linter and the type checker, as CI runs them (and the pre-commit hooks).
LINTED := src tests bench scripts
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# `make bench` (about 7 minutes; BENCH_ARGS=--quick for a smoke run, see `python -m bench --help`):
# the usual install (its bench extra draws the plots; the tests render them too), and
# Debian's wrk when it is missing.
BENCH_ARGS ?=
bench: $(STAMP)
	@command -v wrk >/dev/null || ! command -v apt-get >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || echo "could not install wrk"
	@command -v wrk >/dev/null || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

# The lock files, after a change to pyproject.toml's pins (Renovate runs the same commands,
# the ones each file's header names): dev.txt for make run/test (every extra and the build
# backend), image.txt for the container (the app extra), build.txt for the image's build.
UV_COMPILE := $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet
lock: $(STAMP)
	$(PIP) install uv==0.13.9
	$(UV_COMPILE) requirements/build.in -o requirements/build.txt
	$(UV_COMPILE) pyproject.toml --extra app -o requirements/image.txt
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra embedded --extra app --extra test --extra bench -o $(LOCK)

# The phone app, on a machine with the Flutter SDK: make mobile TARGET=apk (or aab, ipa).
# Packs only the app's own code (src/winkit/app without its web server) with mobile/.
TARGET ?= apk
mobile: $(STAMP)
	$(PIP) install flet-cli==1.0.5
	rm -rf build/mobile && mkdir -p build/mobile/src/winkit
	cp mobile/pyproject.toml build/mobile/ && cp mobile/main.py build/mobile/src/
	cp src/winkit/__init__.py build/mobile/src/winkit/ && cp -r src/winkit/app build/mobile/src/winkit/
	rm build/mobile/src/winkit/app/app.py build/mobile/src/winkit/app/assets.py
	cd build/mobile && ../../$(BIN)/flet build $(TARGET) --yes

clean:
	rm -rf $(VENV) var .pytest_cache build
