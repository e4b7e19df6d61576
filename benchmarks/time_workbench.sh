#!/usr/bin/env bash
# Wall-clock of the README's first command, `make workbench`, on a fresh clone: clones this
# repository's HEAD into a temporary folder (with ../shared linked beside it, as in a checkout),
# times `make venv` (the environment) and `make workbench` (data check and the notebook sequence:
# every run of the profile trained, since a fresh clone has no run folders) and writes
# results/workbench_time_<profile>.json with both times, each notebook's seconds and the machine.
# Run it on an otherwise idle machine: a training job beside it slows both.
#
#   benchmarks/time_workbench.sh                 # profile quick (make workbench's default)
#   PROFILE=smoke benchmarks/time_workbench.sh   # minutes: checks the script itself
set -euo pipefail
PROFILE=${PROFILE:-quick}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/../shared" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$shared" "$tmp/shared"
git clone -q "$repo" "$tmp/clone"
mkdir -p "$repo/logs"
log="$repo/logs/workbench_time_$PROFILE.log"  # git-ignored; read it if a step fails
t0=$(date +%s)
make -C "$tmp/clone" venv PYTHON="$PYTHON" >"$log" 2>&1
t1=$(date +%s)
# the clone's own results/runs.jsonl holds no run of this profile unless one was committed:
# RETRAIN=1 makes sure every run is trained, as on a clone of a repository that records none
make -C "$tmp/clone" workbench PROFILE="$PROFILE" RETRAIN=1 PYTHON="$PYTHON" >>"$log" 2>&1
t2=$(date +%s)
"$PYTHON" - "$repo" "$tmp/clone" "$PROFILE" "$((t1 - t0))" "$((t2 - t1))" <<'EOF'
import json, os, platform, subprocess, sys, time
from pathlib import Path

repo, clone, profile, venv_s, workbench_s = sys.argv[1], Path(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:])
timings = json.loads((clone / "executed" / profile / "timings.json").read_text())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
out = {"profile": profile, "commit": subprocess.check_output(["git", "-C", repo, "rev-parse", "HEAD"], text=True).strip(),
       "date": time.strftime("%Y-%m-%d %H:%M:%S"), "venv_seconds": venv_s, "workbench_seconds": workbench_s,
       "total_seconds": venv_s + workbench_s, "notebook_seconds": timings["seconds"],
       "cores": os.cpu_count(), "cpu": cpu, "runs_trained": len(list((clone / "runs").iterdir()))}
path = Path(repo) / "results" / f"workbench_time_{profile}.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"{profile}: make venv {venv_s / 60:.1f} min, make workbench {workbench_s / 60:.1f} min "
      f"({out['runs_trained']} runs trained) -> {path}")
EOF
