#!/usr/bin/env bash
# Reproduces the README's "Following a job: `status` and `watch`" samples end to end: a coordinator of its own
# (memory store, a free port, a fresh scratch directory under /tmp), a 30-round Flag job with four workers on the
# bundled Fashion-MNIST subset: submit, worker-0, `status` once it joined, then `watch`; the other three
# workers 15 s after the watch started (worker-3 a sign flipper). Prints every sample block between
# `=== name ===` markers, ready to paste, and the whole watch last (watch-full). Everything it started is killed
# on exit, also on error or Ctrl-C; the scratch directory is removed unless KEEP=1 or the run failed.
#
#   scripts/readme-monitoring-sample.sh            # KEEP=1 keeps the scratch directory (its path is printed)
#   FROM=23 scripts/readme-monitoring-sample.sh    # the replayed round (default: the first one that let the
#                                                  # Byzantine worker in, else 23)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHALANX=(node "$REPO/bin/phalanx.js")
# The bundled subset, so that the run reads the same data on every machine (not /usr/share/datasets).
export PHALANX_DATA="$REPO/data/fashion-mnist-subset"
DELAY=${DELAY:-15} # seconds between the watch's start and the other three workers'
# LIMIT: seconds the watch may take before the run is given up (default 900).

SCRATCH=$(mktemp -d /tmp/phalanx-readme-XXXXXX)
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $status -ne 0 ]]; then
    echo "readme-monitoring-sample: failed (exit $status); logs in $SCRATCH" >&2
  elif [[ "${KEEP:-0}" == 1 ]]; then
    echo "readme-monitoring-sample: scratch directory kept: $SCRATCH" >&2
  else
    rm -rf "$SCRATCH"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$SCRATCH"

# Wait (up to $2 seconds) until file $1 matches the extended regex $3.
wait_for() {
  local file=$1 limit=$2 pattern=$3 waited=0
  until grep -Eq "$pattern" "$file" 2>/dev/null; do
    if ((waited >= limit * 10)); then
      echo "readme-monitoring-sample: no /$pattern/ in $file after ${limit}s" >&2
      tail -20 "$file" >&2 || true
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

block() { printf '=== %s ===\n' "$1"; }

"${PHALANX[@]}" coordinator --host 127.0.0.1 --port 0 --store memory >coordinator.log 2>&1 &
PIDS+=($!)
wait_for coordinator.log 60 'coordinator listening on 127\.0\.0\.1:[0-9]+'
PORT=$(grep -Eo 'coordinator listening on 127\.0\.0\.1:[0-9]+' coordinator.log | head -1 | sed 's/.*://')
wait_for coordinator.log 10 'admin token (created in|read from)'
export PHALANX_COORDINATOR="127.0.0.1:$PORT"

cat >job.yaml <<'EOF'
name: readme
model: { kind: mlp, hidden: [128] }
data: { maxTrain: 2000 }
rounds: 30
workers: { min: 4, max: 4 }
aggregation: { rule: flag, f: 1 }
EOF

worker() {
  "${PHALANX[@]}" worker --name "$1" --job "$JOB" --once "${@:2}" >"$1.log" 2>&1 &
  PIDS+=($!)
}

"${PHALANX[@]}" submit job.yaml >submit.out
JOB=$(awk '/^submitted /{print $2; exit}' submit.out)
[[ -n "$JOB" ]] || { cat submit.out >&2; exit 1; }

worker worker-0
wait_for coordinator.log 120 "worker worker-0 \(.*\) joined"
"${PHALANX[@]}" status "$JOB" >status-waiting.out
timeout "${LIMIT:-900}" "${PHALANX[@]}" watch "$JOB" >watch.out 2>&1 &
WATCH=$!
PIDS+=($WATCH)
WATCH_STARTED=$SECONDS

sleep $((DELAY - (SECONDS - WATCH_STARTED) > 0 ? DELAY - (SECONDS - WATCH_STARTED) : 0))
worker worker-1
worker worker-2
worker worker-3 --byzantine signflip

wait "$WATCH" || { echo "readme-monitoring-sample: watch ended with exit $?" >&2; cat watch.out >&2; exit 1; }
"${PHALANX[@]}" status "$JOB" >status-completed.out

if [[ -z "${FROM:-}" ]]; then
  FROM=$(grep -E '^round +[0-9]+/[0-9]+ .*\(byzantine worker-3 among them\)' watch.out | head -1 |
    awk '{split($2, r, "/"); print r[1]}')
  FROM=${FROM:-23}
fi
"${PHALANX[@]}" watch "$JOB" --from "$FROM" | head -3 >watch-from.out

block submit
cat submit.out
block status-waiting
cat status-waiting.out
block watch-head
# From the header through round 2 and the lines under it.
awk '/^round +3\//{exit} {print}' watch.out
block "watch-from-$FROM (phalanx watch $JOB --from $FROM | head -3)"
cat watch-from.out
block watch-end
# The last round and the lines under it, then the result.
awk '/^round /{buf=""} {buf = buf $0 "\n"} END{printf "%s", buf}' watch.out
block status-completed
cat status-completed.out
block watch-full
cat watch.out
block end
