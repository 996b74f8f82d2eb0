#!/usr/bin/env bash
# XLM MLM against MLM+TLM, larger, on one GPU or TPU: the same comparison as
# experiments/xlm/run.py (retrieval P@1 both ways, zero-shot genre accuracy, two seeds)
# at BERT-Mini size (4 layers, hidden 256), batch 128, 10,000 steps (164M tokens per arm).
# Budgeted for under 10 minutes per pre-training arm on one accelerator; not yet run (this
# task had no device): the per-arm wall time is in each run's log, add the table to README.md.
#   bash experiments/xlm/run_device.sh runs/xlm_device
# Resumable like run.py: a rerun skips finished steps and resumes a stopped pre-training.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-runs/xlm_device}
python -c 'import jax; d = jax.devices(); print(d); assert d[0].platform != "cpu", "no accelerator"'
python experiments/xlm/run.py --runs="$RUNS" --seeds=0,1 --size=mini --batch_size=128 \
  --steps=10000 --lr=5e-4 --retrieval_every=2000
python experiments/xlm/curve.py "$RUNS" "$RUNS/curve.png"
