#!/usr/bin/env bash
# The oneshot table of docs/language-models.md: a small GPT (fortunes_gpt_2_64_c64, 2 blocks of
# width 64, 2 heads, context 64, untied head) on the fortunes corpus, 2 replicates, the GPT recipe
# shortened to --training_steps=600it with 50 steps of warmup and lr 2e-3, one thread. Pruning at
# initialization (the oneshot default, --prune_step=0ep) with magnitude, snip10 (10 x 256 / 64 = 40
# windows of the training split) and random at 50%, 70%, 90% of every prunable weight (global), then
# training the masked network with the whole recipe. The dense trunk is the control above them.
#   bash experiments/transformer_gpt_oneshot.sh [ROOT]          (default /tmp/transformers/root)
# then: python experiments/transformer_tables.py gpt [ROOT]
set -euo pipefail
ROOT=${1:-/tmp/transformers/root}
COMMON=(--default_hparams=fortunes_gpt_2_64_c64 --training_steps=600it --warmup_steps=50it --lr=2e-3
        --num_threads=1 --quiet "--root=$ROOT" --replicate=1-2)
RUN=(python open_prune.py submit --local --)

"${RUN[@]}" train "${COMMON[@]}"
"${RUN[@]}" branch oneshot "${COMMON[@]}" --strategy=magnitude,snip10,random --prune_fraction=0.5,0.7,0.9
