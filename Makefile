# qflow.ops — two commands: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV      := .venv
BIN       := $(CURDIR)/$(VENV)/bin
PY        := $(BIN)/python
NODES     ?= 3
TEST_NODES ?= 8
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_NOCOLOR := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-packages venv ipfs link demo test unit integration sanity lint docs-check lab-up lab-down lab-status bench clean

## setup: Debian packages (Prometheus, Alertmanager, supervisor, Node.js), .venv with pinned deps, js-ipfs, collection link
setup: system-packages venv ipfs link

## system-packages: ask apt only for what is missing, command by command, and never for Debian's nodejs/npm when a
## Node.js is already installed from another source (apt refuses: "held broken packages")
system-packages:
	@pkgs=""
	command -v prometheus >/dev/null 2>&1 || pkgs="$$pkgs prometheus"
	command -v promtool >/dev/null 2>&1 || case "$$pkgs" in *" prometheus"*) ;; *) pkgs="$$pkgs prometheus";; esac
	command -v prometheus-alertmanager >/dev/null 2>&1 || pkgs="$$pkgs prometheus-alertmanager"
	{ command -v supervisord && command -v supervisorctl; } >/dev/null 2>&1 || pkgs="$$pkgs supervisor"
	if ! command -v node >/dev/null 2>&1; then
	  pkgs="$$pkgs nodejs"
	  command -v npm >/dev/null 2>&1 || pkgs="$$pkgs npm"
	elif ! command -v npm >/dev/null 2>&1; then
	  echo "Node.js $$(node --version) is installed without npm; install the npm that belongs to it (not Debian's npm, which needs Debian's nodejs)" >&2
	  exit 1
	fi
	if [ -n "$$pkgs" ]; then
	  echo "== installing Debian packages:$$pkgs"
	  export DEBIAN_FRONTEND=noninteractive
	  apt-get update -qq
	  apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "== creating $(VENV) (pinned: requirements.txt)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c 'import ansible, ansible_runner, yaml, qflow_lab, qflow_ops'
	touch $@

## ipfs: the lab's IPFS daemon (npm ipfs = js-ipfs, locked in lab/ipfs/package-lock.json); npm ci when the lock changed
ipfs: lab/ipfs/node_modules/.installed

lab/ipfs/node_modules/.installed: lab/ipfs/package.json lab/ipfs/package-lock.json
	@echo "== npm ci in lab/ipfs (js-ipfs for the lab; about 3 min with a cold npm cache)"
	(cd lab/ipfs && NO_UPDATE_NOTIFIER=1 npm ci --no-audit --no-fund --loglevel=error)
	touch $@

## link: collections/ansible_collections/qflow/ops, the layout pytest-ansible's --ansible-unit-inject creates (and
## creates itself when pytest runs first); ansible.cfg's collections_path points there for checkout runs
link:
	@mkdir -p collections/ansible_collections/qflow
	[ -e collections/ansible_collections/qflow/ops ] || ln -s ../../.. collections/ansible_collections/qflow/ops

## demo: start the lab, take the nightly backup, run the morning health check and print its report
demo: setup
	$(BIN)/qflow-lab up --nodes $(NODES)
	ansible-playbook playbooks/nightly-backup.yml -i inventories/lab/hosts.yml
	ansible-playbook playbooks/morning-health-check.yml -i inventories/lab/hosts.yml
	echo; cat reports/morning-health-check/latest/report.md

lab-up: setup
	$(BIN)/qflow-lab up --nodes $(NODES)

lab-down:
	$(BIN)/qflow-lab down

lab-status:
	$(BIN)/qflow-lab status

## lab-systemd-up / lab-systemd-down: the lab's systemd profile (each node a container with systemd as PID 1, reached
## over SSH; docker.io and debootstrap are installed on first use). DEPLOY=compose deploys the nodes with docker compose.
.PHONY: lab-systemd-up lab-systemd-down lab-systemd-status integration-systemd
DEPLOY ?= systemd

lab-systemd-up: setup
	$(BIN)/qflow-lab up --profile systemd --nodes $(NODES) --deploy $(DEPLOY)

lab-systemd-down:
	$(BIN)/qflow-lab down --profile systemd

lab-systemd-status:
	$(BIN)/qflow-lab status --profile systemd

## integration-systemd: the whole integration suite against the systemd profile (inventories/lab-systemd/hosts.yml),
## left up; DEPLOY=compose for the compose deploy
integration-systemd: setup
	$(BIN)/qflow-lab up --profile systemd --nodes $(TEST_NODES) --deploy $(DEPLOY) --timeout 300
	QFLOW_LAB_PROFILE=systemd QFLOW_LAB_DEPLOY=$(DEPLOY) QFLOW_TEST_NODES=$(TEST_NODES) \
	  $(PY) -m pytest tests/integration -p no:cacheprovider -q -rs

## check: the inner loop, no lab needed (< 5 min): ansible-test sanity, ansible-lint, ansible-doc, unit tests
.PHONY: check test-processes
check: setup sanity lint docs-check unit

## test: every check and test, each stage timed (README, "Tests"), in two phases.
##  1. Side by side: check (CPU: sanity, lint, ansible-doc, unit); the systemd profile's stage (the tests marked
##     `systemd`, what that profile adds: SSH, systemd units, production paths, the collection and timers inside a node,
##     and the tests marked `nolab`); and the processes lab's tests marked `early` (long, mostly waiting, and shown to
##     hold under CPU contention: the game days, the monthly window, …).
##  2. Alone, on the same processes lab (one lab shared by every test module): the rest of the integration suite, whose
##     tests measure CPU and latency.
test: setup
	@rc=0; stages=""; logs=build/test-logs; mkdir -p $$logs
	begin=$$SECONDS
	$(MAKE) --no-print-directory check >$$logs/check.log 2>&1 & check=$$!
	$(MAKE) --no-print-directory test-systemd SYSTEMD_SELECT='-m "systemd or nolab"' >$$logs/systemd.log 2>&1 & systemd=$$!
	$(MAKE) --no-print-directory test-processes PROCESSES_SELECT='-m "early and not nolab"' LAB_DOWN= \
	  >$$logs/early.log 2>&1 & early=$$!
	wait $$check || rc=$$?; stages="$$stages check=$$((SECONDS - begin))s"
	wait $$early || rc=$$?; stages="$$stages early=$$((SECONDS - begin))s"
	wait $$systemd || rc=$$?; stages="$$stages systemd=$$((SECONDS - begin))s"
	for log in check early systemd; do echo "== $$log (log: $$logs/$$log.log)"; cat $$logs/$$log.log; done
	begin=$$SECONDS
	$(MAKE) --no-print-directory test-processes PROCESSES_SELECT='-m "not early and not nolab"' || rc=$$?
	stages="$$stages processes=$$((SECONDS - begin))s"
	echo "== make test stages (phase 1: check, early, systemd side by side; phase 2: processes):$$stages, rc=$$rc"
	exit $$rc

## test-processes: the integration suite against the processes lab (brought up, shared, then down unless LAB_DOWN is
## empty); within make test, PROCESSES_SELECT splits it in two phases
PROCESSES_SELECT ?=
LAB_DOWN ?= yes
test-processes: setup
	@$(BIN)/qflow-lab up --nodes $(TEST_NODES)
	rc=0
	QFLOW_TEST_NODES=$(TEST_NODES) $(PY) -m pytest tests/integration $(PROCESSES_SELECT) -p no:cacheprovider -q -rs --durations=20 || rc=$$?
	[ -z "$(LAB_DOWN)" ] || $(BIN)/qflow-lab down
	exit $$rc

## test-systemd: the integration tests marked `systemd` on the systemd profile (SYSTEMD_NODES containers with
## systemd, IPFS and the node; docker.io/debootstrap installed on first use), then the profile brought down
.PHONY: test-systemd
SYSTEMD_NODES ?= 3
SYSTEMD_SELECT ?= -m systemd
test-systemd: setup
	@$(BIN)/qflow-lab up --profile systemd --nodes $(SYSTEMD_NODES) --deploy $(DEPLOY) --timeout 300
	rc=0
	QFLOW_LAB_PROFILE=systemd QFLOW_LAB_DEPLOY=$(DEPLOY) QFLOW_TEST_NODES=$(SYSTEMD_NODES) \
	  $(PY) -m pytest tests/integration $(SYSTEMD_SELECT) -p no:cacheprovider -q -rs --durations=20 || rc=$$?
	$(BIN)/qflow-lab down --profile systemd
	exit $$rc

unit: setup
	$(PY) -m pytest tests/unit -p no:cacheprovider -q --durations=10

integration: setup
	$(BIN)/qflow-lab up --nodes $(TEST_NODES)
	QFLOW_TEST_NODES=$(TEST_NODES) $(PY) -m pytest tests/integration -p no:cacheprovider -q -rs

sanity: setup
	tools/ansible-test-sanity.sh

lint: setup
	ansible-lint --offline --profile production -q playbooks roles awx execution-environment.yml inventories/examples

docs-check: setup
	tools/docs-check.sh

bench: setup
	$(PY) bench/health_check.py

## bench-backup: backup create + verify throughput of a node with ~1 GB of state against tar + sha256sum (no lab needed;
## BENCH_ARGS="--size-mb 50" for a quick run). bench-window: the weekly window on 3 and 10 lab nodes (leaves 3 nodes).
.PHONY: bench-backup bench-window
bench-backup: setup
	$(PY) bench/backup.py $(BENCH_ARGS)

bench-window: setup
	$(PY) bench/backup.py --window $(BENCH_ARGS)

clean:
	-$(BIN)/qflow-lab down
	rm -rf build reports .pytest_cache
