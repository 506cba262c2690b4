# carbot.migration: the two commands are `make rehearsal` and `make test`.
# Both install what they need (system packages, a virtualenv) on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := $(CURDIR)/.venv
BIN    := $(VENV)/bin
SCALE  ?= 0.1
SEED   ?= 42
# maintenance (the write-freeze night) or online (no write freeze, docs/online_cutover.md)
MODE   ?= maintenance
INVENTORY ?= inventories/local

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR ?= 1

MOLECULE_SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help setup system-deps rehearsal rehearsal-clean test lint yamllint ansible-lint ruff sanity ansible-doc pytest molecule mutation clean

help: ## show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: system-deps $(VENV)/.installed ## install system packages and the virtualenv

system-deps:
	@scripts/install-system-deps.sh chromium

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

rehearsal: setup rehearsal-clean ## full local rehearsal from nothing (SCALE=0.1 by default; SCALE=1 for production volumes; MODE=online: no write freeze)
	$(BIN)/ansible-playbook rehearsal/playbooks/$(if $(filter online,$(MODE)),rehearsal_online.yml,rehearsal.yml) -i $(INVENTORY) -e legacy_db_scale=$(SCALE) -e legacy_db_seed=$(SEED)

rehearsal-clean: setup ## stop the stand-ins and remove the local rehearsal cluster
	$(BIN)/ansible-playbook rehearsal/playbooks/rehearsal_clean.yml -i $(INVENTORY)

test: setup lint pytest molecule ## every check: yamllint, ansible-lint, ruff, pytest, all Molecule scenarios

lint: yamllint ansible-lint ruff sanity

yamllint:
	$(BIN)/yamllint --strict .

ansible-lint:
	$(BIN)/ansible-lint --offline

ruff:
	$(BIN)/ruff check .

SANITY_DIR := $(CURDIR)/.sanity
SANITY_COPY := $(SANITY_DIR)/ansible_collections/carbot/migration
GET_PIP := $(HOME)/.ansible/test/cache/get_pip_24_2.py

sanity: ansible-doc ## ansible-test sanity on what the collection tarball ships (galaxy.yml build_ignore)
	@# ansible-test needs the collection under ansible_collections/carbot/migration: the built tarball, unpacked.
	rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)/build $(SANITY_COPY)
	$(BIN)/ansible-galaxy collection build --force --output-path $(SANITY_DIR)/build . >/dev/null
	tar xzf $(SANITY_DIR)/build/carbot-migration-*.tar.gz -C $(SANITY_COPY)
	@# its own git index: ansible-test lists the files to test from git (this tree ignores .sanity/)
	cd $(SANITY_COPY) && git init -q && git add -A
	@# No download of get-pip from ansible's CI host (only the package registries are reachable):
	@# scripts/ansible-test-get-pip.py bootstraps pip from ensurepip instead; requirements come from the
	@# configured package index once, then from the virtualenvs cached in ~/.ansible/test/venv.
	@mkdir -p $(dir $(GET_PIP)) && cmp -s scripts/ansible-test-get-pip.py $(GET_PIP) || cp scripts/ansible-test-get-pip.py $(GET_PIP)
	cd $(SANITY_COPY) && $(BIN)/ansible-test sanity --python 3.11 --color no

ansible-doc: ## ansible-doc renders every module (carbot.migration's and the rehearsal collection's)
	@for m in plugins/modules/*.py rehearsal/plugins/modules/*.py; do \
	  case $$m in rehearsal/*) coll=carbot.rehearsal;; *) coll=carbot.migration;; esac; \
	  name=$$coll.$$(basename $$m .py); \
	  $(BIN)/ansible-doc $$name >/dev/null || { echo "ansible-doc failed for $$name"; exit 1; }; \
	  echo "ansible-doc ok: $$name"; \
	done

pytest:
	$(BIN)/pytest -q

molecule: ## every Molecule scenario, one after another (a failed one's failed tasks are printed again at the end)
	@mkdir -p .molecule-logs; for s in $(MOLECULE_SCENARIOS); do \
	  echo "=== molecule test -s $$s"; \
	  if ! $(BIN)/molecule test -s $$s 2>&1 | tee .molecule-logs/$$s.log; then \
	    echo "=== molecule test -s $$s failed; what failed, from .molecule-logs/$$s.log:"; \
	    $(BIN)/python scripts/failed_tasks.py .molecule-logs/$$s.log; \
	    exit 1; \
	  fi; \
	done

mutation: setup ## mutation check: small bugs put into the core one at a time, must each fail the tests (not part of `make test`; ~15 min)
	$(BIN)/python bench/mutate.py --json bench/results/mutation.json

clean: ## remove the virtualenv and local state
	-$(MAKE) rehearsal-clean
	rm -rf $(VENV) .rehearsal .pytest_cache .ruff_cache .sanity .molecule-logs
