#!/usr/bin/env bash
# The measured tables of docs/representations.md: how alike each IMP level's layers are to the dense
# trunk's (linear CKA, Procrustes distance), and those of the reinit control, on Fashion-MNIST
# LeNet-300-100 over 3 replicates, on the runs of experiments/sparse_fashion_grid.sh (the LeNet
# recipe shortened to --training_steps=3ep; IMP prunes 1-0.5^(1/3) = 0.2063 per level). Runs that
# are done are skipped: on the root that script made, only the reinit control trains here.
#   bash experiments/representations_table.sh [ROOT] [TRAINING_STEPS] [OUT]   (default /tmp/sparse/root 3ep
#                                                                              /tmp/representations)
set -euo pipefail
ROOT=${1:-/tmp/sparse/root}
STEPS=${2:-3ep}
OUT=${3:-/tmp/representations}
COMMON=(--default_hparams=fashionmnist_lenet_300_100 "--training_steps=$STEPS" --num_threads=1 --quiet "--root=$ROOT")
IMP=(--pruning_fraction=0.2063 --levels=17)
RUN=(python open_prune.py submit --local --)

"${RUN[@]}" train "${COMMON[@]}" --replicate=1-3
"${RUN[@]}" branch iterative "${COMMON[@]}" "${IMP[@]}" --replicate=1-3
"${RUN[@]}" branch reinitialize "${COMMON[@]}" "${IMP[@]}" --control=reinit --replicate=1-3
python experiments/representations_table.py "$ROOT" "$STEPS" "$OUT"
