#!/usr/bin/env bash
# XLM in miniature: MLM alone vs MLM+TLM, same vocabulary, budget and seeds.
# Pre-trains 4 runs into $OUT (default runs/xlm_exp); see experiments/xlm/README.md.
set -euo pipefail
OUT=${OUT:-runs/xlm_exp}
STEPS=${STEPS:-1000}
COMMON=(--config=configs/xlm.py --config.model.size=tiny --config.data.seq_len=128
        --config.train.steps=$STEPS --config.train.eval_every=100000)
python -m plm.main "${COMMON[@]}" --config.job=vocab --workdir="$OUT/vocab"
VOCAB="$OUT/vocab/vocab/spm.model"
for seed in 0 1; do
  for share in 0 0.5; do
    python -m plm.main "${COMMON[@]}" --config.data.vocab_path="$VOCAB" \
      --config.seed=$seed --config.data.tlm_share=$share \
      --workdir="$OUT/tlm${share}_seed$seed"
  done
done
