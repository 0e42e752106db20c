#!/bin/bash
# The official runs behind data/markov/official_comparison_gpu.json: Markov-Simple at commit
# 5807025 on one GPU with the settings of notebooks/params/markov_full-gpu.yaml (T = 1024,
# 1000 iterations, batch 16, d = 8, lr 2e-3), torch seeds 0-4, four runs at a time.  Run from
# a directory holding Markov-Simple/src of that commit, run_official.py and stubs/; then
# `python collect.py logs official_comparison_gpu.json` gathers the curves.
mkdir -p logs
run() {  # p q init seed
  name="p$1_q$2_$3_s$4"
  [ -f logs/$name.done ] && return
  PYTHONPATH=stubs python3 run_official.py $4 work_$name \
    --device cuda:0 --no_compile --p $1 --q $2 --init $3 --iterations 1000 \
    --sequence_length 1024 --batch_size 16 --n_embd 8 --lr 0.002 --eval_freq 25 \
    > logs/$name.log 2>&1 && touch logs/$name.done
}
for seed in 0 1 2 3 4; do
  for chain in "0.5 0.8" "0.2 0.3"; do
    for init in base good; do run $chain $init $seed & done
  done
  wait
done
