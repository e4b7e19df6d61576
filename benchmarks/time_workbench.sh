#!/usr/bin/env bash
# Wall-clock of the README's first command, `make workbench`, on a fresh clone: clones this
# repository's HEAD into a temporary folder (with ../shared linked beside it, as in a checkout),
# times `make venv` (the environment) and `make workbench` (data check and the notebook sequence)
# and writes results/workbench_time_<profile>.json with both times, each notebook's seconds, the
# runs it trained and the machine. Run it on an otherwise idle machine: a training job beside it
# slows both.
#
# smoke and quick train every run (RETRAIN=1, as on a clone of a repository that records none);
# cpu and paper use the runs recorded in results/runs.jsonl (RETRAIN=0), as `make workbench
# PROFILE=cpu` does on a fresh clone, and train only the models notebooks 05/06 load.
# IN_PLACE=1 times `make workbench` in this checkout instead of a clone (its venv as it is), so
# that what the notebooks write (results, figures, the README summary and docs/results.md,
# executed/) stays here: the closing run of a profile, timed once.
#
#   benchmarks/time_workbench.sh                          # profile quick (make workbench's default)
#   PROFILE=smoke benchmarks/time_workbench.sh            # minutes: checks the script itself
#   PROFILE=cpu IN_PLACE=1 benchmarks/time_workbench.sh   # the decisive profile from its record
#   TAG=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 benchmarks/time_workbench.sh
#       # as on an AVX2-only CPU (no native bf16): results/workbench_time_quick_avx2.json
set -euo pipefail
PROFILE=${PROFILE:-quick}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
IN_PLACE=${IN_PLACE:-0}
TAG=${TAG:-}  # appended to the result file's name, e.g. for a run under an ISA cap
case "$PROFILE" in smoke|quick) RETRAIN=${RETRAIN:-1} ;; *) RETRAIN=${RETRAIN:-0} ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/../shared" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$IN_PLACE" = 1 ]; then
  dir=$repo
else
  ln -s "$shared" "$tmp/shared"
  git clone -q "$repo" "$tmp/clone"
  dir=$tmp/clone
fi
mkdir -p "$repo/logs" "$dir/runs"
log="$repo/logs/workbench_time_$PROFILE.log"  # git-ignored; read it if a step fails
ls "$dir/runs" >"$tmp/runs_before"
t0=$(date +%s)
make -C "$dir" venv PYTHON="$PYTHON" >"$log" 2>&1
t1=$(date +%s)
make -C "$dir" workbench PROFILE="$PROFILE" RETRAIN="$RETRAIN" PYTHON="$PYTHON" >>"$log" 2>&1
t2=$(date +%s)
capability=$("$dir/.venv/bin/python" -c "import torch; print(torch.backends.cpu.get_cpu_capability())")
"$PYTHON" - "$repo" "$dir" "$PROFILE" "$IN_PLACE" "$RETRAIN" "$tmp/runs_before" "$((t1 - t0))" "$((t2 - t1))" \
  "$TAG" "$capability" <<'EOF'
import json, os, platform, subprocess, sys, time
from pathlib import Path

repo, clone, profile, in_place, retrain, before = sys.argv[1], Path(sys.argv[2]), *sys.argv[3:7]
venv_s, workbench_s = map(int, sys.argv[7:9])
tag, capability = sys.argv[9:11]
# run folders only: `ls` above skips the dot-named lock files that listdir sees
trained = sorted(n for n in set(os.listdir(clone / "runs")) - set(Path(before).read_text().split())
                 if not n.startswith("."))
timings = json.loads((clone / "executed" / profile / "timings.json").read_text())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
out = {"profile": profile, "commit": subprocess.check_output(["git", "-C", repo, "rev-parse", "HEAD"], text=True).strip(),
       "date": time.strftime("%Y-%m-%d %H:%M:%S"), "venv_seconds": venv_s, "workbench_seconds": workbench_s,
       "total_seconds": venv_s + workbench_s, "notebook_seconds": timings["seconds"],
       "cores": os.cpu_count(), "cpu": cpu, "in_place": in_place == "1", "retrain": retrain not in ("", "0"),
       "runs_trained": len(trained), "trained": trained,
       # what torch ran on: the CPU's ISA as torch sees it (an ISA cap in the environment lowers it)
       "cpu_capability": capability, "isa_caps": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
                                                  if os.environ.get(k)}}
path = Path(repo) / "results" / f"workbench_time_{profile}{'_' + tag if tag else ''}.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"{profile}: make venv {venv_s / 60:.1f} min, make workbench {workbench_s / 60:.1f} min "
      f"({out['runs_trained']} runs trained) -> {path}")
EOF
