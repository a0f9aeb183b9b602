# The two commands a newcomer runs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The local embeddings extra needs torch; its CPU build first (this machine has it on disk), never a CUDA one.
TORCH ?= torch==2.13.0

# litellm must never try to download its cost map (there is no internet in CI).
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: run test bench bench-local soak install browser jail docker-ready clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[docker,local]' --group test
	touch $(STAMP)

install: $(STAMP)

SNAPSHOT := tests/fixtures/snapshot

# Live pages first; with no network, say so loudly and use the bundled real snapshot (in the same run:
# no failed run is left behind). serve takes the next free port when 8001 is busy.
run: $(STAMP)
	$(BIN)/newsreader refresh --fallback-snapshot $(SNAPSHOT)
	$(BIN)/newsreader serve

# The real-browser test needs Debian's chromium; install it when missing (as root, or with sudo).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The default executor runs the agent's code under bubblewrap; install it when missing (as root, or with sudo).
jail:
	@command -v bwrap >/dev/null || { \
	  echo "installing Debian's bubblewrap for the jailed executor"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; }

# The --executor docker tests need a Docker engine and the sandbox image, built offline
# (debootstrap + local wheels). Set up what can be; where it cannot, those tests fail and say why.
docker-ready: $(STAMP)
	@{ command -v dockerd >/dev/null && command -v debootstrap >/dev/null; } || { \
	  echo "installing Debian's docker.io and debootstrap for the docker executor tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker.io debootstrap >/dev/null; } \
	  || echo "warning: could not install docker.io/debootstrap"
	@docker info >/dev/null 2>&1 || { \
	  echo "starting dockerd"; (dockerd >/tmp/newsreader-dockerd.log 2>&1 &); \
	  for i in $$(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done; } || true
	@$(BIN)/newsreader sandbox build >/dev/null || echo "warning: the sandbox image could not be built"

# One thread per torch/BLAS call: three workers on two cores, each spinning two OpenMP threads while it tunes the
# embedding model, took the fresh-pages curve from 4 to 6 minutes and an eval from 25 s to 150 s.
test: $(STAMP) browser jail docker-ready
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 3 --dist load -m "not serial"
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m serial -p no:randomly

# Offline benchmarks; writes BENCHMARKS.md (synthetic histories are cached in data/bench/).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docker,bench]' --group test
	$(BIN)/python -m benchmarks.run

# A real local model in the loop (SmolLM2-135M on llama-cpp-python's server, built once and cached):
# a 5-story refresh, its figures into BENCHMARKS.md. Not part of `make test` (the build takes minutes).
bench-local: $(STAMP) jail
	$(BIN)/python -m benchmarks.local

# The long reliability variants (more fuzz examples, 250 SIGKILLs, ...); writes RELIABILITY.md.
soak: $(STAMP)
	NEWSREADER_SOAK=1 $(BIN)/python -m pytest -q tests/reliability
	$(BIN)/python -m tests.reliability.report

clean:
	rm -rf $(VENV) build *.egg-info
