#!/usr/bin/env bash
# End to end on a synthetic "hey computer" dataset: environment, dataset, data preparation,
# then training, export and verification with the fast_test preset where those commands exist.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh tf
export TF_CPP_MIN_LOG_LEVEL=2
bin=.venv/bin
dataset=./dataset
override="$dataset/demo_override.yaml"

if [ -f "$dataset/generation.json" ] && [ -f "$override" ]; then
  echo "== demo dataset already in $dataset (delete it to regenerate)"
else
  echo "== generating the demo dataset for \"hey computer\" in $dataset"
  "$bin/mww-generate" --output "$dataset" --wake-word "hey computer" --size small --seed 0
fi

echo "== preparing data (ingestion, speaker-disjoint splits, device features)"
"$bin/python" -m mww.prepare --config fast_test --override "$override"

ckpt=./checkpoints/best_weights.weights.h5
if [ -x "$bin/mww-train" ]; then
  echo "== training (fast_test preset)"
  "$bin/mww-train" --config fast_test --override "$override"
else
  echo "== next: training (mww-train) is not part of this version yet; the data above is ready for it."
  exit 0
fi
if [ -x "$bin/mww-export" ]; then
  echo "== exporting"
  "$bin/mww-export" --checkpoint "$ckpt" --config fast_test --override "$override" \
    --output ./models/exported --model-name hey_computer
else
  echo "== next: export (mww-export) is not part of this version yet; the checkpoint is $ckpt."
  exit 0
fi
if [ -x "$bin/mww-verify" ]; then
  echo "== verifying ESPHome compatibility"
  "$bin/mww-verify" ./models/exported/hey_computer.tflite
fi
echo "== done: model ./models/exported/hey_computer.tflite, manifest ./models/exported/hey_computer.json"
