# Pyrallel Consumer: every command runs from the repo's own virtualenv (.venv), which
# `install` creates on first use. `make test` and `make bench` work on a fresh clone.
#
#   make bench ARGS="--num-messages 100000"   benchmark on an embedded broker (or --bootstrap-servers)
#   make test PYTEST_ARGS="-m 'not slow'"      tests (integration ones start real brokers)
#   make broker KIND=tansu                     a local broker in the foreground

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Stamps make `install` incremental: reinstall only when the metadata or the native sources change.
INSTALL_STAMP := $(VENV)/.pyrallel-installed
EXT_STAMP := $(VENV)/.pyrallel-ext-built
SETUP_PY := $(wildcard setup.py)
EXT_SOURCES := $(wildcard ext/*.pyx ext/*.pxd)
DOCKERFILES := $(wildcard images/*Dockerfile*)

ARGS ?=
PYTEST_ARGS ?=
KIND ?=
BROKER_ARGS ?=

.PHONY: install build-ext test bench lint broker clean distclean images bench-docker

install: $(INSTALL_STAMP) $(EXT_STAMP)

$(INSTALL_STAMP): pyproject.toml $(SETUP_PY)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[bench,dev]'
	@touch $@

$(EXT_STAMP): $(INSTALL_STAMP) $(EXT_SOURCES)
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
	rm -f pyrallel_consumer/*.so bench/*.so ext/*.c ext/*.html $(EXT_STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Container images: see images/README.md. BASE_IMAGE=... / KAFKA_IMAGE=... override the bases;
# bench-docker takes BENCH_ARGS, BENCH_CPUSET, BENCH_MEM_LIMIT, BROKER_CPUSET, BROKER_MEM_LIMIT.
DOCKER ?= docker
PROJECT_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_TAG ?= $(PROJECT_VERSION)
BASE_IMAGE ?=
KAFKA_IMAGE ?=
BENCH_MODES := baseline async process
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
COMPOSE := $(DOCKER) compose -f images/compose.yaml

images: install
	$(PY) images/build_wheels.py
	$(DOCKER) build -f images/Dockerfile.base -t pyrallel/bench-base:$(IMAGE_TAG) \
		--build-arg VERSION=$(PROJECT_VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) images
	@set -e; for mode in $(BENCH_MODES); do \
		echo "$(DOCKER) build -f images/Dockerfile.$$mode -t pyrallel/bench-$$mode:$(IMAGE_TAG) images"; \
		$(DOCKER) build -f images/Dockerfile.$$mode -t pyrallel/bench-$$mode:$(IMAGE_TAG) \
			--build-arg PYRALLEL_BASE=pyrallel/bench-base:$(IMAGE_TAG) \
			--build-arg VERSION=$(PROJECT_VERSION) images; \
	done
	$(DOCKER) build -f images/Dockerfile.broker -t pyrallel/bench-broker:$(IMAGE_TAG) \
		--build-arg VERSION=$(PROJECT_VERSION) \
		$(if $(KAFKA_IMAGE),--build-arg KAFKA_IMAGE=$(KAFKA_IMAGE)) images

# Broker, then baseline -> async -> process one at a time; results in bench/results/<run id>-<mode>.json.
bench-docker:
	@mkdir -p bench/results
	export PYRALLEL_UID=$$(id -u) PYRALLEL_GID=$$(id -g) PYRALLEL_IMAGE_TAG=$(IMAGE_TAG) \
		PYRALLEL_RUN_ID=$${PYRALLEL_RUN_ID:-$$(date -u +%Y%m%dT%H%M%SZ)}; \
	$(COMPOSE) up --abort-on-container-failure --exit-code-from process baseline async process; \
	status=$$?; $(COMPOSE) down --volumes; exit $$status
