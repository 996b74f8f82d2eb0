#!/usr/bin/env bash
# UNILM unified against bidirectional-only against no pre-training, larger, on one GPU or
# TPU: the same comparison as experiments/unilm/run.py (genre accuracy; generation BLEU/chrF
# beside copy-source and word-by-word baselines; two fine-tuning seeds) at BERT-Mini size
# (4 layers, hidden 256), pre-training 20,000 steps of batch 128 (328M tokens per arm),
# 4,000 generation and 500 classification fine-tuning steps, on en -> es translation and on
# KJV -> WEB; the target's positions restart (finetune.target_positions, README: with UNILM's
# continued positions a small model from scratch did not even learn to copy on CPU), and the
# target is pseudo-masked (finetune.target_masking, README: it doubled BLEU on CPU). Budgeted for under 10 minutes per arm on one accelerator; not yet run (this
# task had no device): results.md under each --runs gets the tables and each step's wall
# time; add them to README.md.
#   bash experiments/unilm/run_device.sh runs/unilm_device
# Resumable like run.py: a rerun skips finished steps and resumes a stopped run.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-runs/unilm_device}
python -c 'import jax; d = jax.devices(); print(d); assert d[0].platform != "cpu", "no accelerator"'
common=(--seeds=0,1 --size=mini --batch_size=128 --pretrain_steps=20000 --classify_steps=500
        --generate_steps=4000 --generate_lr=5e-4 --target_positions=restart --target_masking=pseudo)
python experiments/unilm/run.py --runs="$RUNS/en_es" --translation "${common[@]}"
python experiments/unilm/run.py --runs="$RUNS/kjv_web" "${common[@]}"
