#!/usr/bin/env bash
# The checks that need a CUDA GPU, in parts that each fit a short lease of a GPU machine.
#
#   benchmarks/gpu_check.sh tests  [OUT]   # tests/test_gpu.py + the training/model/loss suites with CUDA visible
#   benchmarks/gpu_check.sh dryrun [OUT]   # every paper-profile config, 2 steps each, tiny encoders, on the GPU
#   benchmarks/gpu_check.sh bench  [OUT]   # RoBERTa-large training steps at the paper's shape (time, memory, MFU),
#                                           # the fast path alone, then eager vs fast alternating (batch 4 and 8)
#   benchmarks/gpu_check.sh minilm [OUT]   # the cpu preset's ATL run (seed 66) on the GPU: a whole real run
#   LOSSES="atl pemscl" SEEDS="67 68" benchmarks/gpu_check.sh minilm [OUT]   # several losses and seeds, side by side
#   LOSSES="pemscl-no-em pemscl-no-scl" ...                    # the ablation's rows (any --loss preset)
#   benchmarks/gpu_check.sh leaderboard [OUT]   # the cpu profile's leaderboard (13 rows x seeds 66-68) on the GPU,
#   SEEDS="69 70" LABELS="AFL,SSR-PU" PARALLEL=8 ...   # as its own run kind; LABELS keeps some rows, PARALLEL at once
#
# OUT (default results/gpu_check) receives a log and a JSON per part. PYTHON picks the interpreter
# (default .venv/bin/python when present, else python3); PEMSCL_DATA the data folder, as everywhere.
# Nothing here writes to runs/ or results/runs.jsonl: runs go to a temporary folder.
# On a GPU machine without the MiniLM package, PEMSCL_MINILM=<folder with its files> stands in for it;
# one without the data, PEMSCL_DATA=<a copy of meta/, redocred/ and docred/>.
set -euo pipefail
part=${1:?usage: gpu_check.sh tests|dryrun|bench|minilm|leaderboard [OUT]}
out=${2:-results/gpu_check}
mkdir -p "$out"
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
tmp=$(mktemp -d)
export PYTHONUNBUFFERED=1 PEMSCL_RESULTS="$tmp/results" PEMSCL_RUNS="$tmp/runs"
# device_<part>.json: which GPU each part ran on (parts may run on different lent machines)
"$py" - "$out/device_$part.json" <<'EOF'
import json, sys, time, torch
assert torch.cuda.is_available(), "no CUDA device"
info = {"name": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d")}
print(info)
json.dump(info, open(sys.argv[1], "w"))
EOF

case "$part" in
tests)
  # test_gpu.py is the CUDA-only module; the others pick device "auto", which is CUDA here
  "$py" -m pytest -q -p no:cacheprovider -m "not browser" --junitxml "$out/tests.xml" \
    tests/test_gpu.py tests/test_train.py tests/test_encoders.py tests/test_model.py \
    tests/test_losses.py tests/test_train_distributed.py 2>&1 | tee "$out/tests.log"
  ;;
dryrun)
  start=$(date +%s)
  "$py" -m pemscl.dryrun --profile paper --train-only --root "$tmp/dry" 2>&1 | tee "$out/dryrun.log"
  echo "{\"part\": \"dryrun\", \"seconds\": $(( $(date +%s) - start ))}" > "$out/dryrun.json"
  ;;
bench)
  # the fast path alone (bench_paper_shape.json), then eager against fast in one process, steps
  # alternating, at batch 4 and 8 (bench_attention_gpu.json: s/doc, MFU, peak memory, the largest batch
  # that fits each path, the two paths' logit difference)
  "$py" benchmarks/bench_paper_shape.py --attention fast --batch 4 --warmup 2 --reps 5 \
    --out "$out/bench_paper_shape.json" 2>&1 | tee "$out/bench.log"
  "$py" benchmarks/bench_paper_shape.py --compare --batches 4 8 --warmup 2 --reps 5 \
    --out "$out/bench_attention_gpu.json" 2>&1 | tee "$out/bench_attention_gpu.log"
  ;;
minilm)
  # every LOSSES x SEEDS run at once: one MiniLM run leaves most of the GPU idle (8 side by side took
  # at most 4.4 min on an H200, one alone 3.3 min on an H100); each has its own temporary root
  n=$(( $(wc -w <<< "${LOSSES:-${LOSS:-atl}}") * $(wc -w <<< "${SEEDS:-${SEED:-66}}") ))
  one() {
    local name="minilm_$1_$2" root="$tmp/runs_$1_$2"
    # the GPU and how many runs shared it: the minutes column means little without them
    "$py" -c "import json, sys; d = json.load(open(sys.argv[1])); d['side_by_side'] = $n; json.dump(d, open(sys.argv[2], 'w'))" \
      "$out/device_minilm.json" "$out/${name}_device.json"
    "$py" -m pemscl.train --preset cpu --loss "$1" --seed "$2" --device cuda --root "$root" \
      --no-progress > "$out/$name.log" 2>&1
    local run; run=$(ls -d "$root"/*/ | head -1)
    for f in scores history config; do cp "$run/$f.json" "$out/${name}_$f.json"; done
  }
  for loss in ${LOSSES:-${LOSS:-atl}}; do
    for seed in ${SEEDS:-${SEED:-66}}; do one "$loss" "$seed" & done
  done
  wait
  tail -n 4 "$out"/minilm_*.log
  ;;
leaderboard)
  # the leaderboard's runs with device cuda (another key: never pooled with the CPU record), PARALLEL side by
  # side (2 threads each); the runner records them in the temporary results folder, whose runs.jsonl comes back
  # as leaderboard_runs.jsonl (merged with an earlier one: more seeds on another lease add to it)
  start=$(date +%s)
  "$py" -m pemscl.runner --profile cpu --only leaderboard --device cuda --seeds "${SEEDS:-66 67 68}" \
    ${LABELS:+--labels "$LABELS"} --workers "${PARALLEL:-8}" --threads 2 2>&1 | tee "$out/leaderboard.log"
  "$py" -m pemscl.gpu_check --merge-runs "$PEMSCL_RESULTS/runs.jsonl" "$out/leaderboard_runs.jsonl"
  echo "{\"part\": \"leaderboard\", \"seconds\": $(( $(date +%s) - start ))}" > "$out/leaderboard.json"
  ;;
*)
  echo "unknown part: $part" >&2; exit 2 ;;
esac
