# forkdiff — see README.md. Every target that needs tools depends on `setup`.
SHELL := /bin/bash
PY ?= python3
FORKDIFF := $(PY) -m orchestrator
# make test: test files run side by side (pytest-xdist), this many at a time. Under TCG a guest
# keeps one core busy and waits on SSH between commands; a kernel build uses every core.
TEST_JOBS ?= $(shell nproc)

# Debian packages the project needs: one list, shared with `forkdiff setup` (--print shows it).
DEB_PACKAGES := $(shell sed -e 's/\#.*//' orchestrator/data/deb-packages.txt)

# Knobs (see README): passed to forkdiff through the environment.
export KERNEL_TREE PATCHES SUITES VMAS DURATION REPEATS OUT MODEL RESUME SCENARIOS VARIANTS JOBS KMEMLEAK FAULTS OBSERVERS OBSERVER_SEED SPAWN_TIMING SHARD EXECUTOR SWEEP_PART AGAINST

.PHONY: setup test test-fast vm-test kernels rootfs guest report screenshot bench bench-boot bench-vmtest bench-cold lint clean help

help:
	@echo "make setup | test | test-fast | vm-test | kernels | rootfs | guest | bench | bench-boot | bench-vmtest | bench-cold | report OUT=dir | screenshot OUT=dir [PNG=file] | lint | clean"

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
	@# pip under a lock in the cache: two `make` at once (two vm-tests) must not both install
	@if ! $(PY) tools/check_python_env.py "$(CURDIR)" 2>/dev/null; then \
		locks="$${FORKDIFF_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/forkdiff}/locks"; mkdir -p "$$locks"; \
		exec 9>"$$locks/setup-pip.lock"; flock 9; \
		if ! $(PY) tools/check_python_env.py "$(CURDIR)"; then \
			echo "setup: installing Python dependencies and forkdiff (editable)"; \
			$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'; \
		fi; \
	fi

guest: setup
	$(MAKE) -C guest

kernels: setup
	$(FORKDIFF) kernel build --all

rootfs: setup guest
	$(FORKDIFF) rootfs build

# make test: lint; the tests that need neither a kernel tree nor a VM (tests/pure, tests/host:
# markers from the folder, docs/testing.md), before anything is built; then the faults kernels of
# both variants and the rest: tests/tree (trees, kernel builds, the maple tree oracle) and
# tests/vm (and any test outside those folders).
test: setup guest
	$(PY) -m ruff check simulator orchestrator tests tools
	$(PY) -m pytest -q -rs -n $(TEST_JOBS) --durations=15 -m "pure or host" tests
	$(FORKDIFF) kernel build --variant patched --profile faults
	$(FORKDIFF) kernel build --variant baseline --profile faults  # from the patched kernel's objects
	$(FORKDIFF) rootfs build
	$(PY) -m pytest -q -rs -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder --durations=40 -m "not pure and not host" tests

# make test-fast: lint and the pure and host tests only (no kernel tree, no kernel, no VM)
test-fast: setup guest
	$(PY) -m ruff check simulator orchestrator tests tools
	$(PY) -m pytest -q -rs -m "pure or host" tests

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

# the cold path: a fresh clone, an empty FORKDIFF_CACHE, `make $(COLD_TARGET)` (vm-test or test)
bench-cold:
	$(PY) -m tools.bench_cold

report: setup
	$(FORKDIFF) report $(OUT)

# the first screen of OUT's report.html as a PNG (PNG=, default OUT/report.png), by headless
# Chromium: the one target that installs Debian's chromium (not make setup: nothing else needs it)
screenshot:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "screenshot: installing Debian's chromium"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }
	$(PY) -m tools.screenshot $(OUT) $(PNG)

lint: setup
	$(PY) -m ruff check simulator orchestrator tests tools

clean:
	rm -rf results .pytest_cache .ruff_cache
	-$(MAKE) -C guest clean
