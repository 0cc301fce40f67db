# medgossip: the two commands a user needs are `make demo` and `make test`.
# Both install what is missing (idempotent, seconds when nothing changed).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
DEMO_ARGS ?=

.PHONY: all install netdeps browserdeps demo test test-fast bench clean help

help:
	@echo "make demo    install what is missing, then run the 4-peer demo on a local devnet"
	@echo "make test    install what is missing, then run the whole test suite"
	@echo "make test-fast  the same without the multi-process and multi-host scenarios (marked slow): about a minute"
	@echo "make bench   run the benchmarks (figures in bench/results/)"
	@echo "make install just install (venv + npm tools)"

all: install

install: $(STAMP) $(NPM_STAMP) netdeps browserdeps

# fastecdsa, pulled by libp2p, compiles a C extension against GMP's and Python's
# headers. Installing them with apt-get needs root, so this step does nothing when both
# are already there, installs them as root, and otherwise says what to run and stops.
PY_INCLUDE = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
.sysdeps:
	@gmp=$$(ls /usr/include/gmp.h /usr/include/*/gmp.h 2>/dev/null | head -n 1); \
	pyh=$$(ls "$(PY_INCLUDE)/Python.h" /usr/include/python3.11/Python.h 2>/dev/null | head -n 1); \
	if [ -n "$$gmp" ] && [ -n "$$pyh" ]; then \
	    echo "build headers present ($$gmp, $$pyh): no apt-get needed"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "missing gmp.h or Python.h (fastecdsa, pulled by libp2p, builds against them): run 'sudo apt-get install libgmp-dev python3-dev', then make again" >&2; \
	    exit 1; \
	else \
	    echo "installing libgmp-dev python3-dev (headers fastecdsa, pulled by libp2p, builds against)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev python3-dev; \
	fi
	@touch $@

# The multi-host tests (tests/integration/netns.py) run peers in network namespaces:
# they need `ip` (iproute2) and `iptables`, and their delay/loss emulator
# (tests/integration/netem.py) the `netem` extra (netfilterqueue, which builds against
# libnetfilter-queue-dev), all installed here as root. Without root those tests skip,
# so nothing is installed then.
netdeps: $(STAMP)
	@if command -v ip >/dev/null 2>&1 && command -v iptables >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "no ip/iptables and not root: the multi-host tests will skip"; \
	else \
	    echo "installing iproute2 iptables (network namespaces and partitions for the multi-host tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables; \
	fi
	@if $(PY) -c 'import netfilterqueue' >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "no netfilterqueue and not root: the multi-host tests will skip"; \
	else \
	    echo "installing libnetfilter-queue-dev and the netem extra (delay and loss for the multi-host tests)"; \
	    if [ ! -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnetfilter-queue-dev; \
	    fi; \
	    $(PY) -m pip install -q -e '.[dev,netem]'; \
	fi

# The explorer's browser tests (tests/integration/test_explorer_browser.py) drive
# Debian's Chromium with playwright (the `dev` extra): playwright's own browser download
# is not reachable, so chromium comes from apt, as root. Without root and without it,
# those tests skip.
browserdeps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "no /usr/bin/chromium and not root: the explorer's browser tests will skip (sudo apt-get install chromium)"; \
	else \
	    echo "installing chromium (the explorer's browser tests drive it with playwright)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

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

# Everything but the tests marked `slow` (real peer processes, anvil, the demo).
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) bench/ledger.py
	$(PY) bench/codec.py
	$(PY) bench/transport.py
	$(PY) bench/learning.py
	$(PY) bench/byzantine.py
	$(PY) bench/proofs.py
	$(PY) bench/explorer.py
	@if [ "$$(id -u)" -eq 0 ]; then $(PY) bench/multihost.py; \
	else echo "bench/multihost.py skipped: network namespaces need root"; fi

clean:
	rm -rf $(VENV) node_modules .sysdeps
