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

.PHONY: install services serve test lint check-protos lint-protos protos clients check-clients test-clients ghz migrate bench bench-redis bench-events clean distclean

install: $(VENV)/.installed

# The editable install's import finder only maps top-level packages that exist
# at install time, so also reinstall when one of them appears.
TOP_PKG_INITS := $(wildcard server/__init__.py storage/__init__.py ratelimit/__init__.py cache/__init__.py $(PY_CLIENT)/src/socialgraph/__init__.py)

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

# Client toolchains: pinned code generators and every download cache live
# under .tools/ (ignored), so a second run needs no network.
GO_ENV := GOMODCACHE=$(TOOLS)/go/pkg/mod GOCACHE=$(TOOLS)/go/cache GOPATH=$(TOOLS)/go GOFLAGS='-modcacherw -buildvcs=false' GOTOOLCHAIN=local
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_GO := $(TOOLS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)/protoc-gen-go-grpc
NODE_MODULES := clients/typescript/node_modules/.installed
CLIENT_GENERATORS := $(VENV)/.installed $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(NODE_MODULES)
CLIENT_GEN := PROTOC_GEN_GO=$(PROTOC_GEN_GO) PROTOC_GEN_GO_GRPC=$(PROTOC_GEN_GO_GRPC) clients/generate
# What clients/generate writes, relative to clients/.
CLIENT_GENERATED := go/socialgraph/v1 go/socialgraph/service_config.json typescript/src/gen python/src/socialgraph/service_config.json
# The Java client's stubs are Maven build output (protobuf-maven-plugin, protoc
# and protoc-gen-grpc-java from Maven Central at the pom's versions).
MVN := mvn -B -ntp -Dmaven.repo.local=$(TOOLS)/m2
# The server the client tests start.
SOCIALGRAPH_SERVER := $(abspath $(VENV))/bin/socialgraph

serve: $(VENV)/.installed
	$(VENV)/bin/socialgraph serve $(ARGS)

test: $(VENV)/.installed lint services check-protos lint-protos check-clients test-clients $(GHZ)
	GHZ=$(abspath $(GHZ)) $(PY) -m pytest $(PYTEST_ARGS)

# ruff, then mypy (strict on server/, storage/ and ratelimit/); both read their
# settings from pyproject.toml.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

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

$(PROTOC_GEN_GO):
	$(GO_ENV) GOBIN=$(dir $@) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PROTOC_GEN_GO_GRPC):
	$(GO_ENV) GOBIN=$(dir $@) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# ts-proto, tsc and the client's dependencies, as package-lock.json pins them.
$(NODE_MODULES): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --cache $(TOOLS)/npm --no-audit --no-fund
	touch $@

# Regenerate every client's code under clients/ (commit the result).
clients: $(CLIENT_GENERATORS)
	$(CLIENT_GEN)

# Generate every client into a temp dir and compare with clients/ on disk.
check-clients: $(CLIENT_GENERATORS)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(CLIENT_GEN) "$$tmp"; \
	for path in $(CLIENT_GENERATED); do \
		if ! diff -r "clients/$$path" "$$tmp/$$path"; then \
			echo "" >&2; \
			echo "ERROR: generated client code clients/$$path is out of date with protos/." >&2; \
			echo "       Run 'make clients' and commit the result. ('<' = on disk, '>' = freshly generated)" >&2; \
			exit 1; \
		fi; \
	done; \
	echo "check-clients: generated client code is up to date"

# Each client's own tests, against a `socialgraph serve` they start.
test-clients: $(VENV)/.installed $(NODE_MODULES)
	cd clients/go && $(GO_ENV) SOCIALGRAPH_SERVER=$(SOCIALGRAPH_SERVER) go test -count=1 ./...
	cd clients/typescript && SOCIALGRAPH_SERVER=$(SOCIALGRAPH_SERVER) npm test
	cd clients/java && SOCIALGRAPH_SERVER=$(SOCIALGRAPH_SERVER) $(MVN) test

migrate: $(VENV)/.installed
	$(VENV)/bin/socialgraph migrate $(ARGS)

bench: $(VENV)/.installed services $(GHZ)
	GHZ=$(abspath $(GHZ)) $(PY) -m bench.run $(ARGS)
	$(PY) -m bench.events $(filter --quick,$(ARGS))
	$(PY) -m bench.big_account $(filter --quick,$(ARGS))

bench-redis: $(VENV)/.installed services
	$(PY) -m bench.redis_bench $(ARGS)

bench-events: $(VENV)/.installed services
	$(PY) -m bench.events $(ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tools tools/node_modules clients/typescript/node_modules clients/typescript/dist clients/java/target
