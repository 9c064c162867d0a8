# Build / dev entry points. Everything runs inside $(VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

# protos/ is the contract; buf.gen.yaml generates the Python code into the
# client distribution (clients/python), with local plugins only.
PY_CLIENT := clients/python
PY_GEN_DIR := $(PY_CLIENT)/src/socialgraph/v1
# The buf CLI, pinned in tools/package.json (npm, into tools/node_modules).
BUF := tools/node_modules/.bin/buf
# ghz from the Go module proxy, pinned, into .tools/bin; Go's module and build
# caches stay in .tools too (ignored), so a clone reuses its first download.
GHZ_VERSION := v0.120.0
TOOLS := $(abspath .tools)
GHZ := .tools/bin/ghz
GO_TOOLS_ENV := GOBIN=$(TOOLS)/bin GOPATH=$(TOOLS)/go GOMODCACHE=$(TOOLS)/go/pkg/mod GOCACHE=$(TOOLS)/go/cache GOFLAGS=-modcacherw

.PHONY: install services serve test check-protos lint-protos protos ghz migrate bench bench-redis clean distclean

install: $(VENV)/.installed

# The editable install's import finder only maps top-level packages that exist
# at install time, so also reinstall when one of them appears.
TOP_PKG_INITS := $(wildcard server/__init__.py storage/__init__.py ratelimit/__init__.py $(PY_CLIENT)/src/socialgraph/__init__.py)

# The server depends on socialgraph-client, installed from its folder.
$(VENV)/.installed: pyproject.toml $(PY_CLIENT)/pyproject.toml $(TOP_PKG_INITS)
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ./$(PY_CLIENT) -e '.[test]'
	touch $@

# PostgreSQL and Redis on loopback for the tests and the bench (installs them
# from Debian's packages when missing; see scripts/services).
services:
	scripts/services

serve: $(VENV)/.installed
	$(VENV)/bin/socialgraph serve $(ARGS)

test: $(VENV)/.installed services check-protos lint-protos $(GHZ)
	GHZ=$(abspath $(GHZ)) $(PY) -m pytest $(PYTEST_ARGS)

# Regenerate the Python code from protos/ (commit the result).
protos: $(VENV)/.installed $(BUF)
	$(BUF) generate

# Generate into a temp dir from the .proto files on disk and compare with the
# generated files on disk (works in a fresh clone and with uncommitted edits;
# also catches missing and stale generated files).
check-protos: $(VENV)/.installed $(BUF)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BUF) generate -o "$$tmp/fresh"; \
	mkdir -p "$$tmp/ondisk"; \
	find $(PY_GEN_DIR) -type f \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.pyi' \) \
		-exec cp {} "$$tmp/ondisk/" \;; \
	if ! diff -r "$$tmp/ondisk" "$$tmp/fresh/$(PY_GEN_DIR)"; then \
		echo "" >&2; \
		echo "ERROR: generated protobuf code under $(PY_GEN_DIR)/ is out of date with protos/." >&2; \
		echo "       Run 'make protos' and commit the result. ('<' = on disk, '>' = freshly generated)" >&2; \
		exit 1; \
	fi; \
	echo "check-protos: generated code is up to date"

$(BUF): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund
	touch $@

# buf lint (STANDARD and comments), buf format, and buf breaking against the
# protos before this change (scripts/buf-breaking says which commit).
lint-protos: $(BUF)
	$(BUF) lint
	$(BUF) format --diff --exit-code
	BUF=$(BUF) scripts/buf-breaking

ghz: $(GHZ)

# Rebuilt when GHZ_VERSION changes (the stamp names the version).
$(GHZ): .tools/ghz-$(GHZ_VERSION)
.tools/ghz-$(GHZ_VERSION):
	$(GO_TOOLS_ENV) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
	touch $@

migrate: $(VENV)/.installed
	$(VENV)/bin/socialgraph migrate $(ARGS)

bench: $(VENV)/.installed services $(GHZ)
	GHZ=$(abspath $(GHZ)) $(PY) bench/run.py $(ARGS)

bench-redis: $(VENV)/.installed services
	$(PY) bench/redis_bench.py $(ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .mypy_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tools tools/node_modules
