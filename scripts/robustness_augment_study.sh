#!/bin/bash
# Issue 24 study: the tuned transformer preset against the same preset trained with detector
# augmentations, each scored on shifted samples with calibration none, scale (the old global fit),
# function (the resolution function with tails, relative to training) and auto (the same, the
# tails mapped only where the sample has more than training); the main job's BDT beside.
#
#   MAIN_JOB=<clone that ran `make run`> OUT=<work dir> bash scripts/robustness_augment_study.sh
#
# Shifted samples: EVENTS per class each (default 10000), the detector changes of
# scripts/robustness_study.py. Trainings: EPOCHS epochs unless the candidate says (default 3) on the main job's
# 90k zpole_30k sample; nominal = EVENTS per class made as that sample was (seed 201), more
# events than a run's held-out split, so the kept fractions carry smaller errors.
# Writes $OUT/report_<name>.md (kept fractions and scale factors, with errors), one per tagger.
# SAMPLES: the shifted samples (default the seven made for the study; naming msdom, widetails,
# d0only, harsh or momres adds kinds of change that neither they nor the augmentation were made with).
# CANDIDATES picks the trainings (names below), e.g. CANDIDATES="tuned residual"; MODES the
# calibrations (default none,scale,function,auto: auto chooses between function and the training's
# function scaled by one factor).
# CEILING="combined shape ..." also measures what the physics allows on those shifted samples: the
# same preset trained on that detector itself (TRAIN_EVENTS per class, made as the shifted sample
# but with its own seed); each report then adds the candidates' figures as a fraction of it and
# ceiling / nominal, the most a kept fraction can be (robustness_checkpoint.py --ceiling).
# CEILING_TRAIN: the ceilings' overrides on top of the tuned preset, e.g. "augment=residual
# trainer.max_epochs=16" for the robust preset's own recipe (the ceiling of that tagger).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
MAIN_JOB=${MAIN_JOB:?set MAIN_JOB to the clone that ran make run}
OUT=${OUT:-$ROOT/outputs/robustness_augment_study}
EVENTS=${EVENTS:-10000}
EPOCHS=${EPOCHS:-3}
CANDIDATES=${CANDIDATES:-tuned detector residual bdt}
CEILING=${CEILING:-}
CEILING_TRAIN=${CEILING_TRAIN:-}
TRAIN_EVENTS=${TRAIN_EVENTS:-30000}
MODES=${MODES:-none,scale,function,auto}
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
 # kinds of change neither the samples above nor the augmentation were made with (name them in SAMPLES)
 [msdom]="401 detector.d0_a_mm=0.004 detector.d0_b_mm_gev=0.022 detector.z0_a_mm=0.004 detector.z0_b_mm_gev=0.02"
 [widetails]="402 detector.ip_tail_fraction=0.05 detector.ip_tail_scale=8"
 [d0only]="403 detector.d0_a_mm=0.0075 detector.d0_b_mm_gev=0.015"
 [harsh]="404 detector.ip_resolution_scale=1.3 detector.ip_tail_fraction=0.1 detector.ip_tail_scale=5 detector.track_efficiency=0.93 detector.fake_tracks_per_event=0.3 detector.d0_bias_um=2 detector.z0_bias_um=2"
 [momres]="405 detector.momentum_resolution_scale=2"
)
SAMPLES=${SAMPLES:-scale1p5 shape tails eff95 fakes misalign combined}
# the seeds of the ceiling's training samples (the detector as above)
declare -A CEILING_SEED=([combined]=301 [shape]=302 [tails]=303 [scale1p5]=304 [fakes]=305 [eff95]=306
                         [misalign]=307 [msdom]=308 [widetails]=309 [d0only]=310 [harsh]=311 [momres]=312)
# train_preset <run dir> <run name> <sample dir> [overrides...]: the tuned preset, EPOCHS epochs
train_preset() {
  local dir=$1 name=$2 sample=$3; shift 3
  [[ " $* " == *" trainer.max_epochs="* ]] || set -- "$@" trainer.max_epochs="$EPOCHS"
  "$PY" -m flavortag train +experiment=transformer_zpole_tuned "$@" \
    run_name="$name" "data.paths=[$sample/uds.parquet,$sample/cc.parquet,$sample/bb.parquet]" \
    tracking.tracking_uri="sqlite:///$OUT/mlflow.db" trainer.progress=false evaluate.plot_formats=[png] \
    hydra.run.dir="$dir" > "$dir.log" 2>&1
}
# the trainings: overrides on top of +experiment=transformer_zpole_tuned
declare -A TRAIN=(
 [tuned]=""
 [detector]="augment=detector"
 [residual]="augment=residual"
 [residual12]="augment=residual trainer.max_epochs=12"
 [residual16]="augment=residual trainer.max_epochs=16"  # = +experiment=transformer_zpole_robust
 [quarter]="augment=residual augment.fraction=0.25"
 [half]="augment=detector augment.fraction=0.5"
)
[ -f "$S/nominal/bb.parquet" ] || "$PY" -m flavortag generate n_events="$EVENTS" seed=201 out="$S/nominal" progress=false
ALL=""
for name in $SAMPLES; do
  set -- ${DET[$name]}
  seed=$1; shift
  [ -f "$S/$name/bb.parquet" ] || "$PY" -m flavortag generate n_events="$EVENTS" seed="$seed" "$@" out="$S/$name" progress=false
  ALL="$ALL $S/$name"
done
echo "samples ready $(date)"
CEILING_ARGS=()
for name in $CEILING; do
  set -- ${DET[$name]}
  shift
  T=$OUT/ceiling/$name
  [ -f "$T/sample/bb.parquet" ] || "$PY" -m flavortag generate n_events="$TRAIN_EVENTS" seed="${CEILING_SEED[$name]}" \
    "$@" out="$T/sample" progress=false
  # shellcheck disable=SC2086
  [ -f "$T/run/checkpoints/best.pt" ] || train_preset "$T/run" "transformer-tuned-ceiling-$name" "$T/sample" $CEILING_TRAIN
  CEILING_ARGS+=("$name=$T/run/checkpoints/best.pt")
  echo "ceiling $name trained $(date)"
done
for cand in $CANDIDATES; do
  if [ "$cand" = bdt ]; then  # the main job's BDT, trained on the same sample
    ck=$MAIN_JOB/outputs/main_job/bdt/checkpoints/bdt.skops
    cfg=$MAIN_JOB/outputs/main_job/bdt/.hydra/config.yaml
  else
    ck=$OUT/$cand/checkpoints/best.pt
    cfg=$OUT/$cand/.hydra/config.yaml
    if [ ! -f "$ck" ]; then
      # shellcheck disable=SC2086
      train_preset "$OUT/$cand" "transformer-tuned-$cand" "$SAMPLE" ${TRAIN[$cand]}
      echo "$cand trained $(date)"
    fi
  fi
  # shellcheck disable=SC2086
  "$PY" "$ROOT/scripts/robustness_checkpoint.py" --checkpoint "$ck" --config "$cfg" --samples $ALL \
    --nominal "$S/nominal" --events "$EVENTS" --modes "$MODES" --name "$cand" --out "$OUT/report_$cand.md" \
    ${CEILING_ARGS[@]:+--ceiling "${CEILING_ARGS[@]}"} > "$OUT/score_$cand.log" 2>&1
  echo "$cand scored $(date)"
done
