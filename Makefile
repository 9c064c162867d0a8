# Build / dev entry points. Everything runs inside $(VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

PROTO_DIR := protos
PROTO_SRCS := $(wildcard $(PROTO_DIR)/socialgraph/v1/*.proto)
# protoc-gen-mypy / protoc-gen-mypy_grpc are looked up on PATH, so put the venv first.
PROTOC := PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc
# Usage: $(call protoc_gen,OUTDIR)
protoc_gen = $(PROTOC) -I$(PROTO_DIR) --python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) $(PROTO_SRCS)

.PHONY: install services serve test check-protos protos migrate bench bench-redis bench-events clean distclean

install: $(VENV)/.installed

# The editable install's import finder only maps top-level packages that exist
# at install time, so also reinstall when one of them appears.
TOP_PKG_INITS := $(wildcard server/__init__.py storage/__init__.py ratelimit/__init__.py protos/socialgraph/__init__.py)

$(VENV)/.installed: pyproject.toml $(TOP_PKG_INITS)
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

# PostgreSQL and Redis on loopback for the tests and the bench (installs them
# from Debian's packages when missing; see scripts/services).
services:
	scripts/services

serve: $(VENV)/.installed
	$(VENV)/bin/socialgraph serve $(ARGS)

test: $(VENV)/.installed services check-protos
	$(PY) -m pytest $(PYTEST_ARGS)

# Regenerate protobuf/gRPC code in place (commit the result).
protos: $(VENV)/.installed
	@test -n "$(PROTO_SRCS)" || { echo "no .proto files under $(PROTO_DIR)/socialgraph/v1" >&2; exit 1; }
	$(call protoc_gen,$(PROTO_DIR))

# Generate into a temp dir from the .proto files on disk and compare with the
# generated files on disk (works in a fresh clone and with uncommitted edits;
# also catches missing and stale generated files).
check-protos: $(VENV)/.installed
	@test -n "$(PROTO_SRCS)" || { echo "no .proto files under $(PROTO_DIR)/socialgraph/v1" >&2; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/fresh" "$$tmp/ondisk"; \
	if ! $(call protoc_gen,$$tmp/fresh) >"$$tmp/protoc.log" 2>&1; then \
		cat "$$tmp/protoc.log" >&2; echo "ERROR: protoc failed" >&2; exit 1; \
	fi; \
	(cd $(PROTO_DIR) && find . -type f \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.pyi' \) \
		-exec cp --parents {} "$$tmp/ondisk/" \;); \
	if ! diff -r "$$tmp/ondisk" "$$tmp/fresh"; then \
		echo "" >&2; \
		echo "ERROR: generated protobuf code under $(PROTO_DIR)/ is out of date with the .proto files." >&2; \
		echo "       Run 'make protos' and commit the result. ('<' = on disk, '>' = freshly generated)" >&2; \
		exit 1; \
	fi; \
	echo "check-protos: generated code is up to date"

migrate: $(VENV)/.installed
	$(VENV)/bin/socialgraph migrate $(ARGS)

bench: $(VENV)/.installed services
	$(PY) bench/run.py $(ARGS)

bench-redis: $(VENV)/.installed services
	$(PY) bench/redis_bench.py $(ARGS)

bench-events: $(VENV)/.installed services
	$(PY) bench/events.py $(ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .mypy_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
