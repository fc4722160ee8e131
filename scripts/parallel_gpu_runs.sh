#!/usr/bin/env bash
# Several trainings side by side on one GPU, each inside a wall-clock budget.
#
#   ARJAX_DATA_DIR=DIR scripts/parallel_gpu_runs.sh RUNS_FILE
#
# RUNS_FILE holds one run per line: `NAME EXPERIMENT[:VARIANT] [field.path=value ...]`
# (blank lines and lines starting with # are skipped), e.g.
#   nade     nade_binarized_mnist
#   made     made_binarized_mnist optim.learning_rate=2e-3
# Every run is an ordinary `python -m arjax train EXPERIMENT --workdir $RUNS/NAME [overrides]`
# with `train.max_train_minutes=$BUDGET_MIN`: it stops after the epoch that passes the budget,
# evaluates its best-validation checkpoint on the test set and writes results.json
# (`stopped_for_time` says so). A run still going at $HARD_SECONDS is killed and leaves no
# results.json. With `nvidia-cuda-mps-control` on the machine, MPS lets the small runs' kernels
# overlap with the big ones' instead of time-slicing. At the end one line per run (test and
# best valid NLL, epochs, wall time), and $OUT/results.tar.gz holds every run's results.json,
# metrics.jsonl, config.json, best samples and log.
# SMOKE=1 runs every experiment's smoke variant instead, a dry run in seconds on a CPU.
set -u
RUNS_FILE=${1:?usage: scripts/parallel_gpu_runs.sh RUNS_FILE}
OUT=${OUT:-runs/parallel_out}
RUNS=${RUNS:-runs/parallel}
BUDGET_MIN=${BUDGET_MIN:-30}
HARD_SECONDS=${HARD_SECONDS:-$(python3 -c "print(int(60 * $BUDGET_MIN + 600))")}
SMOKE=${SMOKE:-0}
PY=${PY:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
LOGS=$RUNS/_logs
mkdir -p "$OUT" "$LOGS"
start=$(date +%s)

mps=0
if [ "$SMOKE" != 1 ] && command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
  mps=1; echo "MPS on"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$LOGS/gpu.txt"

names=()
while read -r name experiment overrides; do
  case "$name" in ""|\#*) continue ;; esac
  budget=$BUDGET_MIN
  if [ "$SMOKE" = 1 ]; then experiment="${experiment%%:*}:smoke"; budget=0.2; fi
  # shellcheck disable=SC2086  # the overrides are words
  timeout "$HARD_SECONDS" $PY -m arjax train "$experiment" --workdir "$RUNS/$name" $overrides \
    "train.max_train_minutes=$budget" >"$LOGS/$name.log" 2>&1 &
  names+=("$name")
done <"$RUNS_FILE"
wait
echo "all runs ended after $(( $(date +%s) - start )) s"
[ "$mps" = 1 ] && echo quit | nvidia-cuda-mps-control

for name in "${names[@]}"; do
  if [ -f "$RUNS/$name/results.json" ]; then
    $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]:28s} test {r['test_nll_nats']:.3f}  valid {r['best_valid_nll_nats']:.3f}  epochs {r['epochs_run']}  {r['wall_time_s']:.0f}s\")" \
      "$RUNS/$name/results.json" "$name"
  else
    echo "$name: no results.json; last lines of its log:"; tail -n 3 "$LOGS/$name.log"
  fi
done
tar czf "$OUT/results.tar.gz" "$LOGS" "$RUNS"/*/results.json "$RUNS"/*/metrics.jsonl \
  "$RUNS"/*/config.json "$RUNS"/*/samples/best.png 2>/dev/null
echo "results in $OUT/results.tar.gz"
