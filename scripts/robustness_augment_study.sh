#!/bin/bash
# Issue 24 study (session 3): the tuned transformer as the main job trains it, against the same preset
# trained with augment=detector, each scored on shifted samples with calibration none, scale, auto.
#
#   MAIN_JOB=<clone that ran `make run`> OUT=<work dir> bash scripts/robustness_augment_study.sh
#
# Shifted samples: 3k events per class each (EVENTS=...), the detector changes of
# scripts/robustness_study.py; nominal: each model's own held-out test split of the 90k zpole_30k
# sample. Writes $OUT/report_<model>.md (kept fractions and scale factors, with errors).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
MAIN_JOB=${MAIN_JOB:?set MAIN_JOB to the clone that ran make run}
OUT=${OUT:-$ROOT/outputs/robustness_augment_study}
EVENTS=${EVENTS:-3000}
export FLAVORTAG_SAMPLES=$MAIN_JOB/samples
S=$OUT/samples
SAMPLE=$FLAVORTAG_SAMPLES/zpole_ild_30k
declare -A DET=(
 [scale1p5]="202 detector.ip_resolution_scale=1.5"
 [shape]="203 detector.d0_a_mm=0.007 detector.d0_b_mm_gev=0.018 detector.z0_a_mm=0.008 detector.z0_b_mm_gev=0.016"
 [tails]="204 detector.ip_tail_fraction=0.1 detector.ip_tail_scale=4"
 [eff95]="205 detector.track_efficiency=0.95"
 [fakes]="206 detector.fake_tracks_per_event=0.5"
 [misalign]="207 detector.d0_bias_um=3 detector.z0_bias_um=3"
 [combined]="208 detector.d0_a_mm=0.007 detector.d0_b_mm_gev=0.016 detector.z0_a_mm=0.007 detector.z0_b_mm_gev=0.015 detector.ip_tail_fraction=0.08 detector.ip_tail_scale=4 detector.track_efficiency=0.96"
)
ALL=""
for name in scale1p5 shape tails eff95 fakes misalign combined; do
  set -- ${DET[$name]}
  seed=$1; shift
  [ -f "$S/$name/bb.parquet" ] || "$PY" -m flavortag generate n_events="$EVENTS" seed="$seed" "$@" out="$S/$name" progress=false
  ALL="$ALL $S/$name"
done
if [ ! -f "$OUT/aug/checkpoints/best.pt" ]; then  # the main job's budget: 2 epochs
  "$PY" -m flavortag train +experiment=transformer_zpole_tuned augment=detector trainer.max_epochs=2 \
    run_name=transformer-tuned-aug "data.paths=[$SAMPLE/uds.parquet,$SAMPLE/cc.parquet,$SAMPLE/bb.parquet]" \
    tracking.tracking_uri="sqlite:///$OUT/mlflow.db" trainer.progress=false evaluate.plot_formats=[png] \
    hydra.run.dir="$OUT/aug"
fi
MJ=$MAIN_JOB/outputs/main_job
# shellcheck disable=SC2086
"$PY" "$ROOT/scripts/robustness_checkpoint.py" --checkpoint "$MJ/transformer-tuned/checkpoints/best.pt" \
  --config "$MJ/transformer-tuned/.hydra/config.yaml" --samples $ALL --events "$EVENTS" \
  --name transformer-tuned --out "$OUT/report_transformer-tuned.md"
# shellcheck disable=SC2086
"$PY" "$ROOT/scripts/robustness_checkpoint.py" --checkpoint "$OUT/aug/checkpoints/best.pt" \
  --config "$OUT/aug/.hydra/config.yaml" --samples $ALL --events "$EVENTS" \
  --name transformer-tuned-aug --out "$OUT/report_transformer-tuned-aug.md"
