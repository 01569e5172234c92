#!/usr/bin/env bash
# A/B of the warm workflow time of Figure 1's experiment, ss_fig1 alone (4 widths x 5 seeds x
# 10^4 steps, one label reading), between an older commit and this checkout, alternating runs on
# the same machine with the same environment (this checkout's .venv, PYTHONPATH on each
# checkout's src/) and one compile cache. Each run starts from an empty results folder.
#
#   git worktree add --detach /tmp/base 932c6e9
#   bash benchmarks/ab_fig1_workflow.sh /tmp/base [pairs]
#
# The config is the base checkout's config/config.yaml cut to its ss_fig1 experiment, given to
# both checkouts unchanged. The first run of each is a warm-up (it fills the compile cache and
# is reported, not compared); then `pairs` (default 2) alternating pairs.
set -eu
BASE=$(cd "$1" && pwd)
PAIRS=${2:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=$HERE/.venv/bin/python
TMP=$(mktemp -d /tmp/ab-fig1-XXXX)
export TORCHINDUCTOR_CACHE_DIR=$TMP/cache
CFG=$TMP/ss_fig1.yaml
"$PY" - "$BASE/config/config.yaml" "$CFG" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["experiments"] = {"ss_fig1": cfg["experiments"]["ss_fig1"]}
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
EOF
run() {  # checkout label
  local w rc t0 t1
  w=$(mktemp -d "$TMP/run-XXXX")
  t0=$(date +%s.%N)
  rc=0
  PYTHONPATH=$1/src "$HERE/.venv/bin/snakemake" -s "$1/Snakefile" --directory "$w" \
    --configfile "$CFG" --replace-workflow-config --cores 2 --quiet >"$w.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  printf '%-12s rc=%d wall %6.1f s  load %s\n' "$2" "$rc" "$(echo "$t1 - $t0" | bc)" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  rm -rf "$w"
}
echo "base $(git -C "$BASE" rev-parse --short HEAD), head $(git -C "$HERE" rev-parse --short HEAD), $(date -u)"
run "$BASE" "base warm-up"
run "$HERE" "head warm-up"
for _ in $(seq "$PAIRS"); do
  run "$BASE" "base"
  run "$HERE" "head"
done
date -u
rm -rf "$TMP"
