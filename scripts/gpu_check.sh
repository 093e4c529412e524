#!/usr/bin/env bash
# GPU check of issue 14: transformer training events/s with bf16 autocast, the fraction of
# step time spent waiting for data (goal < 10%), peak GPU memory, and the same for
# weaver-core's ParT (when installed), on the same events at the same size.
#
#   scripts/gpu_check.sh                  # on a machine with a CUDA GPU
#   scripts/gpu_check.sh --device cpu     # smoke test of the python parts without a GPU
#
# Extra arguments go to scripts/bench_vs_weaver.py (e.g. --steps 50 --repeat-sample 4).
# Exits 3 with a message when no GPU is visible (and --device cpu was not given).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ "$PYTHON" = python ] && PYTHON=.venv/bin/python

device=cuda
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ "$device" != cpu ]; then
  if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA GPU visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)')):" \
         "nothing to measure here; run it on a GPU machine (or --device cpu for a smoke test)" >&2
    exit 3
  fi
  "$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")'
  precision=bf16
  steps=(--steps 60 --warmup 10 --repeats 3 --repeat-sample 4)
else
  precision=fp32   # bf16 autocast on CPU is slow and not what the GPU check measures
  steps=(--steps 3 --warmup 6 --repeats 1)
fi
out="${GPU_CHECK_OUT:-gpu_check.json}"
echo "== training / inference, ours vs weaver-core ParT, $device, $precision =="
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" scripts/bench_vs_weaver.py \
  --device "$device" --precision "$precision" "${steps[@]}" --json "$out" ${args[@]+"${args[@]}"}
echo "== figures also written to $out =="
"$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ours = r["ours"]
print(f"ours: {ours['train']:.0f} training events/s, data wait {100 * ours['data_wait']:.1f}% of step time "
      f"(goal < 10%: {'ok' if ours['data_wait'] < 0.10 else 'ABOVE'}), peak GPU memory {ours['peak_gpu_mb']} MB")
if "ratio_train" in r:
    print(f"ours / ParT: training {r['ratio_train']:.2f}, inference {r['ratio_infer']:.2f}")
EOF
