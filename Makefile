# Two commands for a newcomer: `make demo` and `make test`. Each sets up what it needs
# on a fresh machine: a Python 3.11 venv, the pinned aws-cdk CLI and Node.js 22 from npm.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The sklearn image runs Python 3.9: use it for the image's serving code when it runs here.
IMAGE_PYTHON ?= $(shell for p in python3.9 $$HOME/.pyenv/versions/3.9*/bin/python3.9; do $$p -c '' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)
VENV := .venv
IMAGE_VENV := .venv-image
PY := $(VENV)/bin/python
# node_modules/.bin first: the CDK CLI and jsii then run on the Node 22 that npm installed.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup test demo bench synth lint snapshot-update clean

help:
	@echo "make demo   deploy the dev stack to a local AWS (moto), invoke, batch-transform, destroy"
	@echo "make test   unit, snapshot, cdk-nag, cfn-lint, container-parity and end-to-end tests"
	@echo "make bench  benchmarks; results go to bench/RESULTS.md"

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 11) else "need Python 3.10 or 3.11 (scikit-learn 1.2.1 has no wheels for %d.%d); set PYTHON=/path/to/python3.11" % v)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@node -e 'const m = +process.versions.node.split(".")[0]; if (m < 22) { console.error("Node " + process.versions.node + " is too old for the CDK; no node-* package for this platform"); process.exit(1) }'
	@touch $@

# The sklearn image's own serving code (sagemaker-containers, Flask 1.1.1) for parity tests.
$(IMAGE_VENV)/.installed: requirements-image.txt
	rm -rf $(IMAGE_VENV)
	$(or $(IMAGE_PYTHON),$(PYTHON)) -m venv $(IMAGE_VENV)
	$(IMAGE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(IMAGE_VENV)/bin/python -m pip install --quiet -r requirements-image.txt
	@touch $@

# The nginx the image runs in front of gunicorn, for the parity tests: Debian's nginx
# package unpacked into .tools/ (no service started, nothing installed system-wide).
NGINX_DIR := .tools/nginx
$(NGINX_DIR)/.installed:
	rm -rf $(NGINX_DIR) .tools/debs && mkdir -p $(NGINX_DIR) .tools/debs
	cd .tools/debs && { apt-get download nginx nginx-common 2>/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && apt-get download nginx nginx-common; }; }
	for deb in .tools/debs/*.deb; do dpkg-deb -x $$deb $(NGINX_DIR); done
	$(NGINX_DIR)/usr/sbin/nginx -v
	@touch $@

# Three workers on two cores: the deploys and servers spend some of their time waiting
# (measured here: 2 workers 2m34s, 3 workers 2m23s, 4 workers 2m44s, whose contention costs
# ~40 s more CPU). Tests that share a set-up stay on one worker (tests/conftest.py); the
# ten slowest are listed.
TEST_WORKERS ?= 3
test: setup $(IMAGE_VENV)/.installed $(NGINX_DIR)/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=10

demo: setup
	$(PY) -m devtools.demo

bench: setup
	@command -v wrk >/dev/null || { echo "installing wrk (the load generator) with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
	$(PY) -m bench.run_all

synth: setup
	cdk synth -c env=$${ENV:-dev}

snapshot-update: setup
	$(PY) -m pytest tests/stack/test_snapshots.py tests/cli/test_docs.py --snapshot-update

clean:
	rm -rf $(VENV) $(IMAGE_VENV) .tools node_modules cdk.out .pytest_cache
