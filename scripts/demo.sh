#!/usr/bin/env bash
# End to end on a synthetic "hey computer" dataset with the fast_test preset: environment, dataset,
# data preparation, training, calibration on the validation split, export, ESPHome verification,
# held-out evaluation through TFLite Micro, and a live-check run on an ambient recording.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh tf
export TF_CPP_MIN_LOG_LEVEL=2
bin=.venv/bin
dataset=./dataset
override="$dataset/demo_override.yaml"
cfg=(--config fast_test --override "$override")

echo "== demo dataset for \"hey computer\" in $dataset (kept when this generator version already made it)"
"$bin/mww-generate" --output "$dataset" --wake-word "hey computer" --size small --seed 0 --reuse

echo "== preparing data (ingestion, speaker-disjoint splits, device features)"
"$bin/mww-prepare" "${cfg[@]}"

ckpt=./checkpoints/best_weights.weights.h5
echo "== training (fast_test preset)"
"$bin/mww-train" "${cfg[@]}"

echo "== choosing the cutoff and window on the validation split"
"$bin/mww-evaluate" --checkpoint "$ckpt" "${cfg[@]}" --split val --output-dir ./evaluation/val

echo "== exporting"
calibration=()
[ -f ./evaluation/val/calibration.json ] && calibration=(--calibration ./evaluation/val/calibration.json)
"$bin/mww-export" --checkpoint "$ckpt" "${cfg[@]}" --output ./models/exported --model-name hey_computer \
  "${calibration[@]}"

echo "== verifying ESPHome compatibility"
"$bin/mww-verify" ./models/exported/hey_computer.tflite

echo "== held-out test split, through TFLite Micro as the device runs it"
"$bin/mww-evaluate" --tflite ./models/exported/hey_computer.tflite \
  --manifest ./models/exported/hey_computer.json "${cfg[@]}" --split test --output-dir ./evaluation/test

ambient="$(find "$dataset/ambient" -name '*.wav' | sort | head -n 1)"
echo "== live check on $ambient (what would wake the device)"
"$bin/mww-detect" ./models/exported/hey_computer.json "$ambient"

echo "== done: model ./models/exported/hey_computer.tflite, manifest ./models/exported/hey_computer.json"
echo "== paste ./models/exported/esphome.yaml into your device's ESPHome YAML:"
cat ./models/exported/esphome.yaml
