# ticklake: the two commands of the quick start are `make run` and `make test`.
.PHONY: test-cluster run run-secure test install install-test lint pytest bench bench-quick chaos stack-up stack-down images

## run: the whole pipeline locally (Kafka, Redis, Prometheus, producer, ingest, query API)
run: install
	uv run --frozen ticklake-stack run

## run-secure: the same with every hop protected as the chart does it: Kafka SASL_SSL with a
## user and ACLs per service, Redis TLS with a user per service, API keys on (docs/security.md)
run-secure: install
	uv run --frozen ticklake-stack run --secure

## test: lint, type checks, import contracts and every test (real Kafka, Redis, Helm, kube-apiserver)
test: install-test lint pytest

install:
	bash tools/bootstrap.sh

install-test:
	bash tools/bootstrap.sh --test

lint:
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy libs/core/src libs/devstack/src services/producer/src services/ingest/src services/query-api/src operator/src bench tools

## pytest: every test, the real one-node cluster's (tests/cluster) included, but for the two longest
## cluster files (the Prometheus Operator alerts and the skaffold loop, ~15-25 min): those run in test-cluster
pytest:
	uv run --frozen pytest --ignore=tests/cluster/test_monitoring.py --ignore=tests/cluster/test_skaffold.py

## test-cluster: only the real one-node cluster tests (images built with podman, helm install on a real node)
test-cluster: install-test
	bash tools/k8s/build-monitoring.sh
	uv run --frozen pytest tests/cluster

stack-up: install
	uv run --frozen ticklake-stack up

stack-down:
	uv run --frozen ticklake-stack down

## bench: every benchmark scenario on the real local stack -> bench/results/latest.json, docs/benchmarks.md
## and the generated blocks of docs/ (refuses a dirty tree: commit first, or BENCH_ARGS=--allow-dirty)
bench: install
	uv run --frozen python bench/run_all.py $(BENCH_ARGS)

## bench-quick: the same scenarios with shorter windows and smaller backlogs (< 10 min on the
## 2-core machine when the query data is cached; timed in docs/testing.md, "Measured times")
bench-quick: install
	uv run --frozen python bench/run_all.py --quick $(BENCH_ARGS)

## images: the four service images plus Kafka and Redis, built with podman (docs/images.md)
images:
	bash tools/bootstrap.sh --images
	uv run --frozen ticklake-stack images build

## chaos: the fault suite over keyed and spread feeds (SIGKILLs, broker restart, Redis down, lake full, S3 errors, flush exception; root for the tmpfs) -> bench/results/chaos.json, docs/reliability.md
chaos: install
	uv run --frozen python bench/chaos.py
	uv run --frozen python bench/chaos_report.py
