# Pyrallel Consumer: every command runs from the repo's own virtualenv (.venv), which
# `install` creates on first use, with uv when it is installed and venv + pip otherwise.
# `make test` and `make bench` work on a fresh clone, and after `uv run` made the .venv.
#
#   make bench ARGS="--num-messages 100000"   benchmark on an embedded broker (or --bootstrap-servers)
#   make test PYTEST_ARGS="-m 'not slow'"      tests (integration ones start real brokers)
#   make broker KIND=tansu                     a local broker in the foreground

PYTHON ?= python3
# Another virtualenv (e.g. VENV=.venv-3.12 PYTHON=python3.12) keeps interpreters side by side.
VENV ?= .venv
PY := $(VENV)/bin/python
# uv when it is on PATH (UV= forces pip, UV=/path/to/uv picks one); pip otherwise.
UV ?= $(shell command -v uv 2>/dev/null)
# Stamps make `install` incremental: reinstall only when the metadata or the native sources change.
INSTALL_STAMP := $(VENV)/.pyrallel-installed
EXT_STAMP := $(VENV)/.pyrallel-ext-built
SETUP_PY := $(wildcard setup.py)
UV_LOCK := $(wildcard uv.lock)
EXT_SOURCES := $(wildcard ext/*.pyx ext/*.pxi ext/*.pxd)
DOCKERFILES := $(wildcard images/*Dockerfile* images/local/Dockerfile*)

ARGS ?=
PYTEST_ARGS ?=
KIND ?=
BROKER_ARGS ?=

.PHONY: install build-ext test bench lint broker clean distclean images bench-docker

install: $(INSTALL_STAMP) $(EXT_STAMP)

# The editable install builds the Cython extensions in place (both routes), so it also stamps them;
# it also makes the checkout's bench/ importable from $(VENV) (setup.py: the bench is not part of
# the library's distribution, its dependencies are the `bench` group that `dev` includes).
# uv: `uv sync` from uv.lock, into $(VENV), leaving packages it did not install (--inexact).
# pip: a virtualenv made by uv has no pip (ensurepip adds it); --group needs pip 25.1+.
# PYTHONWARNINGS hides setuptools' "Editable installation" notice, which pip 26 prints.
$(INSTALL_STAMP): pyproject.toml $(SETUP_PY) $(UV_LOCK)
ifneq ($(UV),)
	@test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --inexact
else
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip >/dev/null
	@$(PY) -m pip install --disable-pip-version-check -q 'pip>=25.1'
	PYTHONWARNINGS='ignore:Editable installation' \
		$(PY) -m pip install --disable-pip-version-check -q -e . --group dev
endif
	@touch $@ $(EXT_STAMP)

# Rebuilds the extensions after an edit of ext/ (the install above built them the first time).
$(EXT_STAMP): $(EXT_SOURCES) | $(INSTALL_STAMP)
	@$(MAKE) --no-print-directory build-ext
	@touch $@

# Optional native extensions: the package works without them (pure-Python twins).
build-ext: $(INSTALL_STAMP)
	@if [ -f setup.py ]; then \
		$(PY) setup.py -q build_ext --inplace; \
	else \
		echo "build-ext: no setup.py, no native extensions to build"; \
	fi

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.run_parallel_benchmark $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict pyrallel_consumer
	@if [ -n "$(DOCKERFILES)" ]; then $(VENV)/bin/hadolint $(DOCKERFILES); fi

# KIND=kafka|tansu; empty lets bench.broker choose (kafka when Java 17 + Maven are usable).
broker: install
	$(PY) -m bench.broker $(if $(KIND),--kind $(KIND)) $(BROKER_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -f pyrallel_consumer/*.so pyrallel_consumer/control/*.so bench/*.so ext/*.c ext/*.html $(EXT_STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Container images: see images/README.md. Both targets run the Python driver (docker SDK; Docker
# or Podman through DOCKER_HOST), so neither needs the Compose plugin.
#   make images [BASE_IMAGE=...] [KAFKA_IMAGE=...] [LOCAL_BASES=1] [IMAGE_BUILD_FLAGS=...]
#   make bench-docker [BENCH_ARGS=...] [BENCH_CPUSET=...] [BROKER_CPUSET=...] [BENCH_MEM_LIMIT=...]
#                     [BROKER_MEM_LIMIT=...] [BROKER_HEAP_OPTS=...] [DOCKER_NETWORK=host|NAME]
# LOCAL_BASES=1 makes the bases here (debootstrap + the Maven Kafka jars) for machines that reach
# no registry; IMAGE_BUILD_FLAGS adds driver build options (--build-arg K=V, --no-cache, --pull,
# --build-network host, --reuse-wheels). CPU sets default to a split of the engine's CPUs.
IMAGE_TAG ?=
BASE_IMAGE ?=
KAFKA_IMAGE ?=
LOCAL_BASES ?=
IMAGE_BUILD_FLAGS ?=
BENCH_ARGS ?= --workload all
BENCH_CPUSET ?=
BROKER_CPUSET ?=
BENCH_MEM_LIMIT ?= 2g
BROKER_MEM_LIMIT ?= 2g
BROKER_HEAP_OPTS ?= -Xms1g -Xmx1g
DOCKER_NETWORK ?= host
CONTAINERS := $(PY) -m bench.containers $(if $(IMAGE_TAG),--tag $(IMAGE_TAG))

images: install
	$(CONTAINERS) images $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) \
		$(if $(KAFKA_IMAGE),--kafka-image $(KAFKA_IMAGE)) $(if $(LOCAL_BASES),--local-bases) \
		$(IMAGE_BUILD_FLAGS)

# Broker, then baseline -> async -> process one at a time; results in bench/results/<run id>-<mode>.json.
bench-docker: install
	$(CONTAINERS) run --bench-args "$(BENCH_ARGS)" --network $(DOCKER_NETWORK) \
		$(if $(BENCH_CPUSET),--bench-cpuset $(BENCH_CPUSET)) \
		$(if $(BROKER_CPUSET),--broker-cpuset $(BROKER_CPUSET)) \
		--bench-memory $(BENCH_MEM_LIMIT) --broker-memory $(BROKER_MEM_LIMIT) \
		--broker-heap "$(BROKER_HEAP_OPTS)"
