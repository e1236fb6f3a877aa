#!/usr/bin/env bash
# The FashionMNIST rows of docs/chaos-causality.md "Measured": LEGCNet-PT (the first 5 epochs analysed)
# under the authors' setup (the fashionmnist_sigmoid_50_30 recipe: raw pixels, PyTorch's init, fc2 and
# fc4 analysed, risk on the test split, benchmark 92%) and under the clean protocol (standardized
# pixels, risk on a held-out 10%, our accuracy and lag rule, exact p-values).
# Usage: experiments/chaos_fmnist_pt.sh ROOT (with FashionMNIST's IDX files under ROOT/FashionMNIST/raw)
set -euo pipefail
root=${1:?usage: $0 ROOT}
base="branch chaos-causality --default_hparams=fashionmnist_sigmoid_50_30 --analysis_steps=5ep --num_threads=1 --quiet --root=$root"
python open_prune.py $base > "$root/authors.log" 2>&1; echo "authors done rc=$?"
python open_prune.py $base --input_normalization=dataset --risk_split=val --accuracy=argmax --change_points=none \
  --lag_rule=cap --pvalue_decimals=-1 > "$root/clean.log" 2>&1; echo "clean done rc=$?"
