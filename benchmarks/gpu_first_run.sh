#!/usr/bin/env bash
# The first thing a short GPU slot runs: ordered, time-boxed checks of every CUDA path, then the GPU
# benchmarks with short settings, one summary table at the end and JSON under the results folder.
#
#   benchmarks/gpu_first_run.sh                  # on the GPU machine, from anywhere (about 5-8 minutes)
#   benchmarks/gpu_first_run.sh --cpu-dry-run    # here, without a GPU: tiny sizes, CUDA-only steps skipped
#
# Options: --results DIR (default benchmarks/results/gpu_first_run; dry run: bench-results/gpu_first_run_dry)
#          --only a,b / --skip a,b (steps: env smoke sdpa chunks oom compile bench_gpu bench_memory)
#          --budget SECONDS (default 540: every step's time box is cut to what is left of it)
#          --stage-official (here, before the run: copy the official package into .gpu_deps/ so that
#                            bench_gpu's official rows and parity run there; carry .gpu_deps with the run)
# Needs only python3 with torch, numpy and opencv, plus this repository (no network, no venv): $PYTHON
# overrides the interpreter. When $OUT is set (the device tool), the merged JSON, the log and the
# benchmark JSONs are copied there as well. The exit status is 0 when no step failed.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DRY=0; RESULTS=""; ONLY=""; SKIP=""; BUDGET=540
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --results) RESULTS=$2; shift ;;
    --only) ONLY=",$2," ; shift ;;
    --skip) SKIP=",$2,"; shift ;;
    --budget) BUDGET=$2; shift ;;
    --stage-official)
      src=$("$PY" -c 'import depth_anything_v2, os; print(os.path.dirname(depth_anything_v2.__file__))') || exit 2
      mkdir -p .gpu_deps && rm -rf .gpu_deps/depth_anything_v2 && cp -r "$src" .gpu_deps/ &&
        find .gpu_deps -name __pycache__ -prune -exec rm -rf {} + &&
        echo "staged $src in .gpu_deps/ (git-ignored): pass carry=[\".gpu_deps\"] to the run"
      exit $? ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_first_run: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$RESULTS" ]; then
  if [ $DRY = 1 ]; then RESULTS=bench-results/gpu_first_run_dry; else RESULTS=benchmarks/results/gpu_first_run; fi
fi
mkdir -p "$RESULTS" || exit 2
RESULTS=$(cd "$RESULTS" && pwd)
[ -d .gpu_deps ] && export PYTHONPATH="$ROOT/.gpu_deps${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
LOG=$RESULTS/gpu_first_run.log
: >"$LOG"; : >"$RESULTS/steps.tsv"
rm -f "$RESULTS"/{env,smoke,sdpa,chunks,oom,compile,bench_gpu,bench_memory,gpu_first_run}.json
START=$(date +%s)
DRYFLAG=()
# The dry run tests the plumbing, not speed: one thread per process is far quicker on a shared, busy CPU.
[ $DRY = 1 ] && DRYFLAG=(--cpu-dry-run) && export OMP_NUM_THREADS=1
FAILED=0

copy_out() {  # the device tool brings back only what is under $OUT (at most 8 files)
  [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] || return 0
  for f in gpu_first_run.json gpu_first_run.log bench_gpu.json bench_memory.json; do
    [ -f "$RESULTS/$f" ] && cp "$RESULTS/$f" "$OUT/"
  done
  return 0
}

wanted() { [ -z "$ONLY" ] || [[ $ONLY == *",$1,"* ]] && [[ $SKIP != *",$1,"* ]]; }

step() {  # step NAME TIME_BOX_SECONDS COMMAND...
  local name=$1 box=$2; shift 2
  if ! wanted "$name"; then printf '%s\tnot-run\t0\t0\n' "$name" >>"$RESULTS/steps.tsv"; return; fi
  local left=$(( BUDGET - ($(date +%s) - START) - 20 ))  # 20 s kept for the summary
  if [ $left -lt 15 ]; then printf '%s\tno-time\t0\t0\n' "$name" >>"$RESULTS/steps.tsv"; FAILED=1; return; fi
  [ "$box" -gt $left ] && box=$left
  echo "=== $name (time box ${box} s, $(( $(date +%s) - START )) s elapsed) ===" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout --kill-after=10 "$box" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || FAILED=1
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $(( $(date +%s) - t0 )) "$box" >>"$RESULTS/steps.tsv"
  copy_out
}

CHECKS=("$PY" -m benchmarks.gpu_checks --results "$RESULTS" ${DRYFLAG[@]+"${DRYFLAG[@]}"})

if [ $DRY = 0 ]; then
  echo "=== nvidia-smi ===" | tee -a "$LOG"
  timeout 20 nvidia-smi 2>&1 | tee -a "$LOG"
fi
step env 40 "${CHECKS[@]}" env
PHOTO=$(head -n 1 "$RESULTS/photos.txt" 2>/dev/null)
PHOTO_ARGS=(); [ -n "$PHOTO" ] && PHOTO_ARGS=(--photo "$PHOTO" --images "$(dirname "$PHOTO")")
step smoke 75 "${CHECKS[@]}" smoke
step sdpa 50 "${CHECKS[@]}" sdpa
step chunks 50 "${CHECKS[@]}" chunks
step oom 50 "${CHECKS[@]}" oom
step compile $(( DRY ? 300 : 180 )) "${CHECKS[@]}" compile  # the CPU compiles slowly
if [ $DRY = 1 ]; then  # no CUDA: bench_gpu must skip cleanly; bench_memory runs its reduced CPU version
  step bench_gpu 60 "$PY" benchmarks/bench_gpu.py --out "$RESULTS/bench_gpu.json"
  step bench_memory 120 "$PY" benchmarks/bench_memory.py ${PHOTO_ARGS[@]+"${PHOTO_ARGS[@]:0:2}"} --frames 1,3 --height 28 \
    --width 42 --input-size 14 --chunk-size 2 --out "$RESULTS/bench_memory.json"
else
  step bench_gpu 150 "$PY" benchmarks/bench_gpu.py ${PHOTO_ARGS[@]+"${PHOTO_ARGS[@]}"} --encoders vits,vitl --dtypes fp32,fp16,bf16 \
    --batches 1,8,64 --runs 5 --warmup 2 --out "$RESULTS/bench_gpu.json"
  step bench_memory 90 "$PY" benchmarks/bench_memory.py ${PHOTO_ARGS[@]+"${PHOTO_ARGS[@]:0:2}"} --frames 100,1000 \
    --chunk-size 16 --out "$RESULTS/bench_memory.json"
fi

echo "=== summary ($(( $(date +%s) - START )) s) ===" | tee -a "$LOG"
timeout 60 "${CHECKS[@]}" summary 2>&1 | tee -a "$LOG"
copy_out
exit $FAILED
