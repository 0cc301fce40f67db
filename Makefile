# medgossip: the two commands a user needs are `make demo` and `make test`.
# Both install what is missing (idempotent, seconds when nothing changed).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
DEMO_ARGS ?=

.PHONY: all install demo test bench clean help

help:
	@echo "make demo    install what is missing, then run the 4-peer demo on a local devnet"
	@echo "make test    install what is missing, then run the whole test suite"
	@echo "make bench   run the benchmarks (figures in bench/results/)"
	@echo "make install just install (venv + npm tools)"

all: install

install: $(STAMP) $(NPM_STAMP)

# System headers some wheels build against (fastecdsa, pulled by libp2p, needs GMP).
.sysdeps:
	@if ! ls /usr/include/gmp.h /usr/include/*/gmp.h >/dev/null 2>&1; then \
	    echo "installing libgmp-dev (needed to build fastecdsa)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev python3-dev; \
	fi
	@touch $@

# torch is installed first and explicitly so that nothing resolves a CUDA build.
$(STAMP): pyproject.toml .sysdeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: install
	$(VENV)/bin/medgossip demo $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(PY) bench/ledger.py
	$(PY) bench/codec.py
	$(PY) bench/transport.py
	$(PY) bench/learning.py

clean:
	rm -rf $(VENV) node_modules .sysdeps
