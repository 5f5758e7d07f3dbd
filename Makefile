# Two entry points, both self-installing on a fresh machine with Python 3.11:
#   make serve   train the example model, pack + sign it into the local store, serve it on 127.0.0.1:8000
#   make test    lint, type-check and run the whole test suite (with the offline validation of deploy/)
PYTHON ?= python3
# The project's interpreter: Debian's python3.11 where there is one, as in the image (built with PGO and LTO: ~30%
# less CPU for Python code than a default source build such as pyenv's, ~10% for imports), else $(PYTHON).
VENV_PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo $(PYTHON))
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
# checkov's pins conflict with the project's, so it lives in its own environment, installed from hashes.
CHECKOV := $(TOOLS)/checkov/bin/checkov
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_COMPILE_BYTECODE := 1
SEALSERVE_HOME ?= .sealserve
PORT ?= 8000

.PHONY: setup bytecode serve test lint typecheck deploy-check image clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --all-extras --all-groups --python $(VENV_PYTHON)
	touch $@

$(CHECKOV): deploy/validate/checkov-requirements.txt | $(UV)
	$(UV) venv --clear --quiet --python $(PYTHON) $(TOOLS)/checkov
	$(UV) pip install --quiet --require-hashes --python $(TOOLS)/checkov/bin/python -r deploy/validate/checkov-requirements.txt
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium

# Debian's podman (with runc), mmdebstrap and HAProxy for the image and fleet tests (tests/image, tests/fleet).
CONTAINER_TOOLS := /usr/bin/podman /usr/bin/runc /usr/bin/mmdebstrap /usr/sbin/haproxy
$(CONTAINER_TOOLS) &:
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq podman runc mmdebstrap haproxy

setup: $(VENV)/.synced $(CHECKOV) $(CHROMIUM) $(CONTAINER_TOOLS)

# sealserve's own bytecode, and the tests' (the editable install's src is not compiled by uv). Where
# PYTHONDONTWRITEBYTECODE is set, no interpreter writes it, so without this every server, worker, trial child and CLI
# call the tests start compiled every module it imported (~0.3 s of CPU a server process; ~1.5 s of a ten-model start). Up-to-date files are skipped; a stale .pyc is ignored by its timestamp.
bytecode: $(VENV)/.synced
	$(VENV)/bin/python -m compileall -q -j0 src tests

serve: $(VENV)/.synced bytecode
	$(VENV)/bin/python examples/diabetes_risk/publish.py --home $(SEALSERVE_HOME)
	SEALSERVE_HOME=$(SEALSERVE_HOME) $(VENV)/bin/sealserve serve examples/diabetes_risk/service.yaml --host 127.0.0.1 --port $(PORT)

lint: setup
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

typecheck: setup
	$(VENV)/bin/mypy src

# One test worker per core (xdist); each test file runs on one worker, so module fixtures start once. The image and
# fleet suites run after it, on their own, and report their own time: they start containers and replica sets.
test: lint typecheck bytecode $(CHECKOV) $(CHROMIUM) $(CONTAINER_TOOLS)
	$(VENV)/bin/pytest -n auto --dist loadfile -m "not image and not fleet" --durations=25
	$(VENV)/bin/pytest -m "image or fleet" --durations=10

# deploy/Dockerfile built with podman on a Debian base made by mmdebstrap (BASE_IMAGE=... to use another base);
# tagged localhost/sealserve:<hash of its inputs>, rebuilt only when they change.
image: setup
	BASE_IMAGE=$(BASE_IMAGE) $(VENV)/bin/python -m tests.image.podman

# kustomize, kubernetes-validate (1.32, strict), KServe's CRD schemas, checkov, hadolint, and the servers the manifests start.
deploy-check: setup
	$(VENV)/bin/pytest tests/deploy

clean:
	rm -rf $(VENV) $(TOOLS) .sealserve .pytest_cache .mypy_cache .ruff_cache
