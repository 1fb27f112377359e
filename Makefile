# nospof.webstack developer entry points. Run as root on Debian 12.
#   make demo       bring up the six-host lab and deploy the stack
#   make demo-down  remove the lab
#   make test       lint, sanity, unit tests, collection build test, Molecule
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
LAB := $(PYTHON) scripts/lab/lab.py
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR := $(if $(CI),0,1)

.PHONY: setup host venv demo demo-down demo-status lint sanity units build-test molecule test docs clean bench

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

# Benchmarks against the demo lab (make demo first); each prints JSON.
bench: venv
	$(PYTHON) tests/bench/lb_failover.py --inventory inventories/lab --output artifacts/bench/lb_failover.json
	$(PYTHON) tests/bench/rolling_deploy.py --inventory inventories/lab --output artifacts/bench/rolling_deploy.json
	$(PYTHON) tests/bench/replication.py --inventory inventories/lab --output artifacts/bench/replication.json
