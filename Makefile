# nospof.webstack developer entry points. Run as root on Debian 12.
#   make demo       bring up the eight-host lab and deploy the stack
#   make demo-down  remove the lab
#   make test       lint, sanity, unit tests, collection build test, Molecule
#   make bench      every benchmark against the demo lab, then docs/benchmarks.md
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
LAB := $(PYTHON) scripts/lab/lab.py
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR := $(if $(CI),0,1)

.PHONY: setup host venv demo demo-down demo-status lint sanity units build-test molecule test docs clean bench bench-short

setup: host venv

host:
	bash scripts/setup-host.sh

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

demo: setup
	$(LAB) up --inventory inventories/lab
	time $(BIN)/ansible-playbook site.yml -i inventories/lab
# The outside client's tools (nmap, testssl.sh, wrk) for the lab tests and make bench.
	$(BIN)/ansible-playbook playbooks/lab_client.yml -i inventories/lab
	@bash scripts/demo-summary.sh inventories/lab

demo-down: venv
	$(LAB) down --inventory inventories/lab

demo-status: venv
	$(LAB) status --inventory inventories/lab

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

sanity: venv
	bash tests/sanity.sh

units: venv
	$(BIN)/pytest -q tests

build-test: venv
	bash tests/build_install.sh

molecule: setup
	$(BIN)/molecule test --scenario-name default

test: setup lint sanity units build-test molecule

docs:
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg
	dot -Tpng -Gdpi=96 docs/architecture.dot -o docs/architecture.png

clean:
	rm -rf .cache tests/output *.tar.gz

# Benchmarks against the demo lab (make demo first). Each script prints JSON and
# keeps it in artifacts/bench/ (chaos: artifacts/chaos/); report.py merges them
# into artifacts/bench/benchmarks.json and docs/benchmarks.md. A benchmark fails
# only on a correctness problem, never on speed. The cold converge recreates the
# lab's containers; the chaos failover case moves the primary to a replica.
BENCH_LAB := inventories/lab
bench: venv
	$(PYTHON) tests/bench/converge.py --inventory $(BENCH_LAB) --cold --output artifacts/bench/converge_cold.json
	$(PYTHON) tests/bench/converge.py --inventory $(BENCH_LAB) --output artifacts/bench/converge_warm.json
	$(PYTHON) tests/bench/datapath.py --inventory $(BENCH_LAB) --duration 10 --output artifacts/bench/datapath.json
	$(PYTHON) tests/bench/footprint.py --inventory $(BENCH_LAB) --output artifacts/bench/footprint.json
	$(PYTHON) tests/bench/lb_failover.py --inventory $(BENCH_LAB) --output artifacts/bench/lb_failover.json
	$(PYTHON) tests/bench/rolling_deploy.py --inventory $(BENCH_LAB) --output artifacts/bench/rolling_deploy.json
	$(PYTHON) tests/bench/replication.py --inventory $(BENCH_LAB) --output artifacts/bench/replication.json
	$(PYTHON) tests/chaos/chaos.py --inventory $(BENCH_LAB) --cases failover --output artifacts/chaos/chaos.json
	$(PYTHON) tests/bench/report.py

# A few minutes on the running demo lab: a warm converge and short runs.
bench-short: venv
	$(PYTHON) tests/bench/converge.py --inventory $(BENCH_LAB) --output artifacts/bench/converge_warm.json
	$(PYTHON) tests/bench/datapath.py --inventory $(BENCH_LAB) --duration 3 --output artifacts/bench/datapath.json
	$(PYTHON) tests/bench/footprint.py --inventory $(BENCH_LAB) --output artifacts/bench/footprint.json
	$(PYTHON) tests/bench/lb_failover.py --inventory $(BENCH_LAB) --repeat 1 --soak 10 --output artifacts/bench/lb_failover.json
	$(PYTHON) tests/bench/report.py
