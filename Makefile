# The two commands of README.md: `make run` (the platform) and `make test` (every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
BUILD_INPUTS := pyproject.toml setup.py $(shell find ext proto -name '*.pyx' -o -name '*.pxd' -o -name '*.proto' 2>/dev/null) $(wildcard src/esimota/ota/_mux.py src/esimota/ota/_mux.pxd)
PYTEST := $(BIN)/python -m pytest

.PHONY: run test test-compiled test-pure bench fleet postgres promtool chromium install clean

# PostgreSQL server binaries (initdb, pg_ctl): Debian's `postgresql` package when they are missing.
postgres:
	@if ! $(PYTHON) -c 'import sys; sys.path.insert(0, "src"); from esimota.store.embedded import find_bindir; find_bindir()' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing PostgreSQL (Debian package postgresql)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL server binaries missing: apt-get install postgresql (or set DATABASE_URL)"; exit 1; fi; \
	fi

# promtool checks deploy/prometheus/alerts.yml in the tests: Debian's `prometheus` package when it is missing.
promtool:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool missing: apt-get install prometheus"; exit 1; fi; \
	fi

# Debian's `chromium` (and CJK fonts for the pages' 中文) for the console's browser tests: Playwright drives
# /usr/bin/chromium and never downloads a browser of its own.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium (Debian packages chromium, fonts-noto-cjk)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "Chromium missing: apt-get install chromium (the console's browser tests need it)"; exit 1; fi; \
	fi

$(STAMP): $(BUILD_INPUTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: postgres promtool chromium $(STAMP)

run: postgres $(STAMP)
	$(BIN)/esimota serve $(ARGS)

# The whole suite on the compiled core, then again on the pure twins (ESIMOTA_PURE=1).
test: install test-compiled test-pure

test-compiled:
	$(PYTEST) tests

test-pure:
	ESIMOTA_PURE=1 $(PYTEST) -m pure_twin tests

bench: install
	$(PYTEST) benchmarks -p no:cacheprovider --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

clean:
	rm -rf build $(VENV) src/esimota/_ext/*.so src/esimota/v1/*_pb2*.py* ext/esimota/_ext/*.c
