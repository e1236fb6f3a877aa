#!/usr/bin/env bash
# The ViT rows of docs/post-training.md: the trained fashionmnist_vit_2_32_p7 trunks of
# experiments/transformer_vit_lottery.sh (2 epochs, 2 replicates) pruned at the end of training by
# magnitude, random, Wanda and SparseGPT, unstructured (per layer) and N:M, evaluated with no
# fine-tune and after 100 steps. The patch embedding (49 inputs per row: no 2:4 groups) and the
# output layer stay dense everywhere, so every cell prunes the same weights.
#   bash experiments/post_training_vit.sh [ROOT]          (default /tmp/transformers/root)
# then: python experiments/post_training_table.py [ROOT]
set -euo pipefail
ROOT=${1:-/tmp/transformers/root}
TRUNK=(--default_hparams=fashionmnist_vit_2_32_p7 --training_steps=2ep --warmup_steps=100it --num_threads=1
       --quiet "--root=$ROOT" --replicate=1-2)
COMMON=("${TRUNK[@]}" --prune_layers_to_ignore=patch_embed.weight,fc.weight)
RUN=(python open_prune.py submit --local --)
AT_END=(--prune_step=2ep --state_step=2ep)  # wanda and sparsegpt prune the trained weights by default

"${RUN[@]}" train "${TRUNK[@]}"
for finetune in 0 100it; do
  "${RUN[@]}" branch oneshot "${COMMON[@]}" --finetune_steps=$finetune --strategy=wanda,sparsegpt --prune_fraction=0.5 \
    --prune_scope=layerwise
  "${RUN[@]}" branch oneshot "${COMMON[@]}" --finetune_steps=$finetune --strategy=wanda,sparsegpt --structure=2:4
  "${RUN[@]}" branch oneshot "${COMMON[@]}" "${AT_END[@]}" --finetune_steps=$finetune --strategy=magnitude,random \
    --prune_scope=layerwise --prune_fraction=0.5
  "${RUN[@]}" branch oneshot "${COMMON[@]}" "${AT_END[@]}" --finetune_steps=$finetune --strategy=magnitude,random \
    --structure=2:4
done
"${RUN[@]}" branch oneshot "${COMMON[@]}" --finetune_steps=0 --strategy=wanda,sparsegpt --structure=4:8
"${RUN[@]}" branch oneshot "${COMMON[@]}" "${AT_END[@]}" --finetune_steps=0 --strategy=magnitude,random --structure=4:8
"${RUN[@]}" branch oneshot "${COMMON[@]}" --finetune_steps=0 --strategy=wanda,sparsegpt --prune_fraction=0.7 \
  --prune_scope=layerwise,owl
"${RUN[@]}" branch oneshot "${COMMON[@]}" "${AT_END[@]}" --finetune_steps=0 --strategy=magnitude,random \
  --prune_scope=layerwise --prune_fraction=0.7
