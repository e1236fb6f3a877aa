#!/usr/bin/env bash
# The lottery-ticket table of docs/transformers.md: a small ViT (fashionmnist_vit_2_32_p7, 27,978
# parameters, 16 patches of 7 x 7) on Fashion-MNIST, 2 replicates, the ViT recipe shortened to
# --training_steps=2ep (938 steps of 128) with 100 steps of warmup, one thread: IMP (iterative, rewind to
# init) at 50% of the survivors per level over 5 levels (densities 0.5 ... 0.031), and the reinit
# control (the ticket's masks, fresh weights) at every level. Level 0 is the dense trunk.
#   bash experiments/transformer_vit_lottery.sh [ROOT]          (default /tmp/transformers/root)
# then: python experiments/transformer_tables.py vit [ROOT]
set -euo pipefail
ROOT=${1:-/tmp/transformers/root}
COMMON=(--default_hparams=fashionmnist_vit_2_32_p7 --training_steps=2ep --warmup_steps=100it --num_threads=1
        --quiet "--root=$ROOT" --replicate=1-2)
RUN=(python open_prune.py submit --local --)
IMP=(--pruning_fraction=0.5 --levels=5)

"${RUN[@]}" train "${COMMON[@]}"
"${RUN[@]}" branch iterative "${COMMON[@]}" "${IMP[@]}"
"${RUN[@]}" branch reinitialize "${COMMON[@]}" "${IMP[@]}" --control=reinit
