#!/usr/bin/env bash
# The iris rows of docs/chaos-causality.md "Measured": the authors' setup (the iris_sigmoid_6 recipe)
# on five inits, then one knob at a time switched to ours, then the clean protocol (every knob ours).
# Usage: experiments/chaos_iris_knobs.sh ROOT [JOBS [more]]; each run is one line of `xargs`, resumable (a
# finished run is skipped); with a third argument, also the cumulative rows and the clean protocol on 5 inits.
set -euo pipefail
root=${1:?usage: $0 ROOT [JOBS]}
jobs=${2:-2}
base="branch chaos-causality --default_hparams=iris_sigmoid_6 --num_threads=1 --quiet --root=$root"
clean="--pvalue_decimals=-1 --lag_rule=cap --change_points=none --accuracy=argmax --risk_split=val --data_order=shuffled --table_split=stratified --model_init=kaiming_normal --bias_init=pytorch"
{
  for r in 1 2 3 4 5; do echo "authors_r$r --replicate=$r"; done
  echo "knob_pvalue --pvalue_decimals=-1"
  echo "knob_guard --change_points=none"
  echo "knob_accuracy --accuracy=argmax"
  echo "knob_risk --risk_split=val"
  echo "knob_order --data_order=shuffled"
  echo "knob_split --table_split=stratified"
  echo "knob_init --model_init=kaiming_normal --bias_init=pytorch"
  echo "clean_r1 $clean"
} | xargs -P "$jobs" -L 1 bash -c 'name=$0; python open_prune.py '"$base"' "$@" > '"$root"'/$name.log 2>&1; echo "$name done rc=$?"'
# Cumulative: the knobs that moved the count, switched together (init, then the order, then the accuracy),
# and the clean protocol on the other four inits: ROOT2 = $3 (optional).
if [ -n "${3:-}" ]; then
  {
    echo "cum_init_order --model_init=kaiming_normal --bias_init=pytorch --data_order=shuffled"
    echo "cum_init_order_accuracy --model_init=kaiming_normal --bias_init=pytorch --data_order=shuffled --accuracy=argmax"
    for r in 2 3 4 5; do echo "clean_r$r $clean --replicate=$r"; done
  } | xargs -P "$jobs" -L 1 bash -c 'name=$0; python open_prune.py '"$base"' "$@" > '"$root"'/$name.log 2>&1; echo "$name done rc=$?"'
fi
