#!/bin/bash
# The official runs behind data/markov/official_comparison.json: Markov-Simple at commit
# 5807025 on CPU with the settings of notebooks/params/markov_full-cpu.yaml.  Run from a
# directory holding Markov-Simple/src of that commit, run_official.py and stubs/.
set -e
mkdir -p logs
run() {  # p q init seed
  name="p$1_q$2_$3_s$4"
  [ -f logs/$name.done ] && return
  OMP_NUM_THREADS=1 PYTHONPATH=stubs python run_official.py $4 work_$name \
    --device cpu --no_compile --p $1 --q $2 --init $3 --iterations 1000 \
    --sequence_length 256 --batch_size 16 --n_embd 8 --lr 0.002 --eval_freq 25 \
    > logs/$name.log 2>&1 && touch logs/$name.done
}
for init in base good; do run 0.5 0.8 $init 0; run 0.2 0.3 $init 0; done
for init in base good; do for seed in 1 2; do run 0.5 0.8 $init $seed; done; done
