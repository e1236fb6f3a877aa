#!/usr/bin/env bash
# The CancerNet grid of docs/spam.md: SpaM's four priors x the authors' two Laplace families (Diag:
# diag_ef, Kron: kfac) on scikit-learn's breast cancer table, three replicates, post-hoc OPD,
# magnitude and random, under the authors' setup (the recipe: raw features, PyTorch's init) and the
# clean one (standardized features, Kaiming init). Usage: experiments/spam_cancernet_grid.sh ROOT
set -euo pipefail
root=${1:?usage: $0 ROOT}
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
for setup in authors clean; do
  extra=()
  [ "$setup" = clean ] && extra=(--input_normalization=dataset --model_init=kaiming_normal)
  for replicate in 1 2 3; do
    for curvature in diag_ef kfac; do
      for prior in scalar layer parameter unit; do
        "$python" open_prune.py branch spam --default_hparams=breastcancer_cancernet --root="$root" \
          --num_threads=1 --quiet --replicate="$replicate" --prior="$prior" --curvature="$curvature" \
          "${extra[@]}" > /dev/null
        echo "done $setup $replicate $curvature $prior"
      done
    done
  done
done
