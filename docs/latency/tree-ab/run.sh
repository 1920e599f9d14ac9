#!/bin/bash
# End to end A/B of two checkouts (OLD, NEW), each thread count in its own process, alternating.
# Usage: OLD=path/to/old-checkout NEW=. INDEX=scifact-index DATA=../shared/data/scifact bash run.sh
OUT=${OUT:-tree-ab}; mkdir -p $OUT; uptime > $OUT/uptime_before.txt
for round in 1 2; do for threads in 1 2; do for tree in $OLD $NEW; do
  python $NEW/eval/tree_timing.py --tree $tree --index $INDEX --dataset $DATA --end-to-end --threads $threads \
      --out $OUT/$(basename $(realpath $tree))_${threads}t_r${round}.json
done; done; done
OMP_WAIT_POLICY=PASSIVE python $NEW/eval/tree_timing.py --tree $NEW --index $INDEX --dataset $DATA --end-to-end \
    --threads 2 --out $OUT/new_2t_passive.json
uptime > $OUT/uptime_after.txt
