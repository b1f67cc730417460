#!/usr/bin/env bash
# Long fuzzing sessions of tests/fuzz.rs: SCALE times each target's CI cases, under SEEDS seeds.
# usage: scripts/fuzz.sh [SCALE (default 100)] [SEEDS (default 4)]
set -euo pipefail
SCALE=${1:-100}
SEEDS=${2:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --tests --quiet
for s in $(seq "$SEEDS"); do
  seed=$(( (s * 2654435761) % 4294967296 ))
  echo "seed $seed, scale $SCALE" >&2
  CHIMERA_FUZZ_SEED=$seed CHIMERA_FUZZ_SCALE=$SCALE cargo test --release --quiet --test integration -- fuzz:: --test-threads 1
done
