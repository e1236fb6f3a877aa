# `make demo` and `make test` create .venv when missing and install open_prune into it.
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_FASHION_MNIST := /usr/share/datasets/fashion-mnist
DEBIAN_FORTUNES := /usr/share/games/fortunes
DEMO_ROOT ?= $(HOME)/open_prune_data

.PHONY: venv dataset slurm demo test benchmarks orderedness-table clean-venv docs

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Fashion-MNIST, the embedded default dataset, and the fortunes text corpus: Debian's packages when we may
# install them.
dataset:
	@if [ -f $(DEBIAN_FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's dataset-fashion-mnist ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or pass --download to open_prune.py"; \
	fi
	@if [ -f $(DEBIAN_FORTUNES)/fortunes ] && [ -f $(DEBIAN_FORTUNES)/computers ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's fortunes (the text corpus) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null; \
	else \
		echo "the fortunes corpus is missing: run 'sudo apt-get install fortunes' (only language models need it)"; \
	fi

# Slurm for the tests' one-node cluster (tests/slurm_cluster.py): Debian's slurm-wlm when we may install it.
slurm:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's slurm-wlm (for the Slurm tests) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null; \
	else \
		echo "slurm-wlm is missing: the Slurm tests will skip (as root, 'apt-get install slurm-wlm' enables them)"; \
	fi

# A short lottery-ticket experiment: dense trunk, IMP levels (winning tickets), and the same masks
# reinitialized (the control; its levels do not depend on each other, so they train as one stack).
# Each command prints test accuracy by density.
DEMO = --default_hparams=fashionmnist_lenet_300_100 --training_steps=10ep --levels=4 --root=$(DEMO_ROOT)
demo: venv dataset
	$(PY) open_prune.py branch iterative $(DEMO)
	$(PY) open_prune.py branch reinitialize $(DEMO) --control=reinit --stack

test: venv dataset slurm
	$(PY) -m ruff check .
	$(PY) -m pytest -q

benchmarks: venv dataset
	for script in benchmarks/*.py; do case $$script in */fashion_lenet.py|*/timing.py) continue;; esac; echo "== $$script"; $(PY) $$script || exit 1; done

# The orderedness table at the authors' code's settings, with its nulls (not checked against the paper's Table 1).
orderedness-table: venv
	$(PY) experiments/orderedness_table.py --root=$(DEMO_ROOT) --stack

# The flag tables of docs/*.md, generated from the hparam dataclasses (`docs/generate.py --check`
# in the tests fails when they are stale).
docs: venv
	$(PY) docs/generate.py

clean-venv:
	rm -rf $(VENV)
