#!/usr/bin/env bash
# `hfrec benchmark --preset gpu` on one GPU, with the LLM methods side by side: each alone leaves an H100/H200 mostly
# idle (a 135M backbone), so after the SR rows (popularity, SASRec, GRU4Rec, Caser; SASRec is every LLM method's
# teacher) each LLM method runs as its own `hfrec benchmark --methods <name>` process into the same output folder,
# and a last plain `hfrec benchmark --preset gpu` reads every row back (the benchmark reuses a row whose results
# were written by the same command on the same users) and writes the one table: results.md / .json / .png.
# Timings of rows trained side by side share the GPU: compare them within this table only.
#   usage: bash bench/benchmark_gpu.sh OUTPUT_DIR [DATASET] [METHODS]    (logs: OUTPUT_DIR/logs/*.log)
# Resumable: rerun the same command after an interruption (LLM trainings continue from their checkpoints).
set -u
out=${1:?usage: bash bench/benchmark_gpu.sh OUTPUT_DIR [DATASET] [METHODS]}
dataset=${2:-ml-100k}
methods=${3:-delrec,trsr,peapod,p2rec}
py=${PYTHON:-python3}
mkdir -p "$out/logs"
bench() { $py -m hfrec.cli benchmark --preset gpu --dataset "$dataset" --output-dir "$out" "$@"; }
bench --methods popularity,sasrec,gru4rec,caser > "$out/logs/sr.log" 2>&1 || { echo "SR rows failed"; exit 1; }
pids=()
for m in ${methods//,/ }; do
    bench --methods "$m" > "$out/logs/$m.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
bench --methods "popularity,sasrec,gru4rec,caser,$methods" > "$out/logs/table.log" 2>&1 || status=1
exit $status
