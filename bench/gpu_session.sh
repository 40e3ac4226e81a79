#!/usr/bin/env bash
# One H200 lease for every LLM method's GPU figures: the SASRec teacher once (80 epochs, seed 42: the teacher of the
# earlier H200 tables), then three chains side by side on the one GPU (each alone leaves an H200 mostly idle):
#   DELRec (gpu preset) -> LLM-TRSR (gpu preset, DELRec ranked in the same table);  PeaPOD (gpu preset, ablation);
#   P2Rec (bench/p2rec_gpu.py: SASRec/GRU4Rec scratch vs enhanced over 3 seeds, user- vs instance-level SFT cost).
# Timings taken here share the GPU with the other chains: relative figures within one chain only.
#   usage: bash bench/gpu_session.sh RESULTS_DIR      (logs: RESULTS_DIR/*.log; RESULTS_DIR/DONE at the end)
set -u
R=${1:?usage: bash bench/gpu_session.sh RESULTS_DIR}
mkdir -p "$R"
py=${PYTHON:-python3}
$py -m hfrec.cli train sr --model sasrec --dataset ml-100k --output_dir "$R/teacher" --num_train_epochs 80 \
    --seed 42 --disable_tqdm true > "$R/teacher.log" 2>&1 || { echo "teacher failed" > "$R/DONE"; exit 1; }
( $py trainers/sft_delrec.py --preset gpu --teacher_dir "$R/teacher" --output_dir "$R/delrec" --disable_tqdm true \
      > "$R/delrec.log" 2>&1
  $py trainers/sft_trsr.py --preset gpu --teacher_dir "$R/teacher" --output_dir "$R/trsr" --disable_tqdm true \
      --compare_with "$R/delrec" > "$R/trsr.log" 2>&1 ) &
$py trainers/sft_peapod.py --preset gpu --teacher_dir "$R/teacher" --output_dir "$R/peapod" --disable_tqdm true \
    > "$R/peapod.log" 2>&1 &
$py bench/p2rec_gpu.py --out "$R/p2rec" --work_dir "$R/p2rec_work" --teacher_dir "$R/teacher" > "$R/p2rec.log" 2>&1 &
wait
echo done > "$R/DONE"
