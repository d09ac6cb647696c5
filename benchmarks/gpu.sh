#!/usr/bin/env bash
# Compiled ecad on one GPU: PixArt-XL-2 at 256 and 1024 px and FLUX.1-dev at 1024 px, from the presets' configs with
# random weights, bfloat16; eager, regional-compiled and whole-compiled with CUDA graphs (mode="reduce-overhead");
# no cache, all-recompute, FORA-3, diffusers' First Block Cache (PixArt; FLUX has no room for a third copy), the
# paper's PixArt-alpha schedules where given. One JSON line per model in $OUT/gpu.jsonl.
#
# Through the device tool, from the repository root, with diffusers and pymoo carried as wheels in .whl:
#   PAPER=.paper bash benchmarks/gpu.sh      (copy the paper's pixart_alpha_256 schedules into an ignored .paper first)
# Every setting can be overridden (the tests run a CPU dry run of this script with the stand-in model):
#   CONFIGS (lines "model size schedules"), DEVICE, DTYPE, MODES, BACKEND, STEPS, ROUNDS, OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
OUT=${OUT:-benchmarks/results}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
MODES=${MODES:-eager,regional,whole:reduce-overhead}
BACKEND=${BACKEND:-inductor}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-3}
PAPER_ARG=()
if [ -n "${PAPER:-}" ]; then PAPER_ARG=(--paper "$PAPER"); fi
CONFIGS=${CONFIGS:-"pixart-alpha 256 no-cache,all-recompute,fora:3,fbcache:0.2
pixart-alpha 1024 no-cache,fora:3,fbcache:0.2
flux-dev 1024 no-cache,fora:3"}
mkdir -p "$OUT"
while read -r model size schedules; do
    [ -z "$model" ] && continue
    extra=()
    if [ "$model" = pixart-alpha ] && [ "$size" = 256 ]; then extra=("${PAPER_ARG[@]}"); fi
    python3 benchmarks/compiled.py --model "$model" --size "$size" --schedules "$schedules" --modes "$MODES" \
        --device "$DEVICE" --dtype "$DTYPE" --backend "$BACKEND" --steps "$STEPS" --rounds "$ROUNDS" \
        --threads "$(nproc)" "${extra[@]}" >> "$OUT/gpu.jsonl"
done <<< "$CONFIGS"
