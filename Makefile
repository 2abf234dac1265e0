# forkdiff — see README.md. Every target that needs tools depends on `setup`.
SHELL := /bin/bash
PY ?= python3
FORKDIFF := $(PY) -m orchestrator

# Debian packages the project needs: one list, shared with `forkdiff setup` (--print shows it).
DEB_PACKAGES := $(shell sed -e 's/\#.*//' orchestrator/data/deb-packages.txt)

# Knobs (see README): passed to forkdiff through the environment.
export KERNEL_TREE PATCHES SUITES VMAS DURATION REPEATS OUT MODEL RESUME SCENARIOS VARIANTS JOBS KMEMLEAK FAULTS OBSERVERS OBSERVER_SEED SPAWN_TIMING SHARD EXECUTOR SWEEP_PART AGAINST

.PHONY: setup test vm-test kernels rootfs guest report bench bench-boot bench-vmtest lint clean help

help:
	@echo "make setup | test | vm-test | kernels | rootfs | guest | bench | bench-boot | bench-vmtest | report OUT=dir | lint | clean"

setup:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@if ! $(PY) tools/check_python_env.py "$(CURDIR)"; then \
		echo "setup: installing Python dependencies and forkdiff (editable)"; \
		$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'; \
	fi

guest: setup
	$(MAKE) -C guest

kernels: setup
	$(FORKDIFF) kernel build --all

rootfs: setup guest
	$(FORKDIFF) rootfs build

# make test: lint, unit and oracle tests, then the VM tests on the faults kernels of both variants.
test: setup guest
	$(PY) -m ruff check simulator orchestrator tests tools
	$(FORKDIFF) kernel build --variant baseline --profile faults
	$(FORKDIFF) kernel build --variant patched --profile faults
	$(FORKDIFF) kernel build --variant patched --profile observers  # tests/vm/test_observers.py
	$(FORKDIFF) rootfs build
	$(PY) -m pytest -q -rs tests

vm-test: setup guest
	$(FORKDIFF) vm-test

bench: setup guest
	$(PY) -m tools.bench
	$(PY) -m tools.bench_predict

# boot to SSH ready per phase, wall and QEMU CPU seconds (BOOT_ARGS: see tools/bench_boot.py)
bench-boot: setup guest
	$(PY) -m tools.bench_boot $(BOOT_ARGS)

# wall time per stage and suite of a vm-test (a fresh run, or OUT=<folder> of an existing one)
bench-vmtest: setup guest
	$(PY) -m tools.bench_vmtest

report: setup
	$(FORKDIFF) report $(OUT)

lint: setup
	$(PY) -m ruff check simulator orchestrator tests tools

clean:
	rm -rf results .pytest_cache .ruff_cache
	-$(MAKE) -C guest clean
