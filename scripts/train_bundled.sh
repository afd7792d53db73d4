#!/usr/bin/env bash
# Retrain the bundled demo checkpoint (cfbench/weights_bundled/codeformer_tiny.safetensors) in one command, from the
# repository root: the three stages of cfbench/configs/train/codeformer_tiny.yaml on CPU (two threads, 53 minutes on a
# 2-core machine), then the float16 export with its model card. Needs the faces folder named in that config
# (data.folder).
#   scripts/train_bundled.sh [RUN_DIR]        (default runs/bundled; re-running resumes each stage)
set -euo pipefail
cd "$(dirname "$0")/.."
config=cfbench/configs/train/codeformer_tiny.yaml
run=${1:-runs/bundled}
mkdir -p "$run"
for stage in stage1 stage2 stage3; do
  if [[ ! -f "$run/$stage/$stage.safetensors" ]]; then
    resume=()
    [[ -f "$run/$stage/ckpt/last.pt" ]] && resume=(--resume)
    sed "s#runs/bundled#$run#g" "$config" > "$run.config.yaml.tmp"
    cfbench train "$stage" --config "$run.config.yaml.tmp" --out "$run/$stage" "${resume[@]}"
  fi
done
rm -f "$run.config.yaml.tmp"
python -m cfbench.train.bundle "$run" --config "$config" --out cfbench/weights_bundled/codeformer_tiny.safetensors
