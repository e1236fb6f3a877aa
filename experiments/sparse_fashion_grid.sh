#!/usr/bin/env bash
# The measured table of docs/sparse-training.md: Fashion-MNIST LeNet-300-100 at densities 0.2, 0.1,
# 0.05, 0.02 over 3 replicates: dense trunk, IMP ticket, SNIP at init, static random ERK, GMP, SET,
# RigL, on the LeNet recipe shortened to --training_steps=3ep (SGD 0.1, batch 128: 1407 steps), one
# thread per process, two lanes in parallel. Densities are of the allocated layers (the output layer
# stays dense everywhere, as OpenLTH's IMP keeps it and the RigL code's MNIST MLP does).
#   bash experiments/sparse_fashion_grid.sh [ROOT] [TRAINING_STEPS] [MODEL] [EXTRA_FLAGS]
#   (default /tmp/sparse/root 3ep fashionmnist_lenet_300_100; MODEL=fashionmnist_lenet5 for the LeNet-5 rows:
#   its own recipe (SGD 0.1, momentum 0.9, cosine) shortened the same way, every method with the output
#   layer dense and the first convolution allocated like the other layers, so all prune the same weights)
#   (EXTRA_FLAGS: more trunk flags for every run, space-separated, e.g. "--warmup_steps=200it")
# then: python experiments/sparse_table.py [ROOT] [TRAINING_STEPS] [MODEL] [EXTRA_FLAGS]
set -euo pipefail
ROOT=${1:-/tmp/sparse/root}
STEPS=${2:-3ep}
MODEL=${3:-fashionmnist_lenet_300_100}
read -r -a EXTRA <<< "${4:-}"
COMMON=("--default_hparams=$MODEL" "--training_steps=$STEPS" "${EXTRA[@]}" --num_threads=1 --quiet "--root=$ROOT")
# the layers every method prunes: the LeNet recipe already keeps fc.weight out; LeNet-5's does not
IGNORE=(); SPARSE_LAYERS=()
if [[ $MODEL == *lenet5 ]]; then
  IGNORE=(--prune_layers_to_ignore=fc.weight); SPARSE_LAYERS=(--first_layer=allocated --output_layer=dense)
fi
RUN=(python open_prune.py submit --local --)
DENSITIES=0.2,0.1,0.05,0.02
FRACTIONS=0.8,0.9,0.95,0.98

"${RUN[@]}" train "${COMMON[@]}" --replicate=1-3     # the dense trunks first: both lanes grow from them

# lane 1: IMP with 1-0.5^(1/3) = 0.2063 pruned per level (levels 7, 10, 13, 17 are at densities 0.198, 0.099,
# 0.049, 0.0195), then SNIP at init at the same densities
(
  "${RUN[@]}" branch iterative "${COMMON[@]}" --pruning_fraction=0.2063 --levels=17 "${IGNORE[@]}" --replicate=1-3
  "${RUN[@]}" branch oneshot "${COMMON[@]}" --strategy=snip10 --prune_layers_to_ignore=fc.weight \
    --prune_fraction=$FRACTIONS --replicate=1-3
) &
# lane 2: the sparse-training branches
(
  "${RUN[@]}" branch static-sparse "${COMMON[@]}" "${SPARSE_LAYERS[@]}" --train_density=$DENSITIES --replicate=1-3
  "${RUN[@]}" branch rigl "${COMMON[@]}" "${SPARSE_LAYERS[@]}" --train_density=$DENSITIES --replicate=1-3
  "${RUN[@]}" branch set "${COMMON[@]}" "${SPARSE_LAYERS[@]}" --train_density=$DENSITIES --replicate=1-3
  "${RUN[@]}" branch gmp "${COMMON[@]}" "${SPARSE_LAYERS[@]}" --final_density=$DENSITIES --replicate=1-3
) &
wait
