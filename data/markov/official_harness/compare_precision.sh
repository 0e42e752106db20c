#!/bin/bash
# The official runs behind data/markov/official_precision.json: Markov-Simple at commit 5807025
# on the CPU, its training loop patched by patch_precision.py to run under CPU autocast in
# float16 (no scaler, as the official GPU loop), float16 with a GradScaler, and bfloat16, with
# the settings of notebooks/params/markov_precision-cpu.yaml (T = 256, 1000 steps, batch 16,
# d = 8, lr 2e-3), p = 0.5, q = 0.8, torch seed 0; and five runs at the paper's T = 1024:
# the proposed init in float16 with and without a scaler, and the standard init in float16
# with and without one and in float32 (MODE float32: the code unpatched, which on the CPU
# trains in float32); about 0.4 s an iteration each on an idle core, 2.5 s on a shared one.
# Run from
# a directory holding run_official.py, stubs/, patch_precision.py and a clone of
# github.com/Bond1995/Markov in repo/.
set -e
mkdir -p logs
run() {  # mode init seed [sequence length, default 256]
  T=${4:-256}
  name="p0.5_q0.8_$2_s$3"
  [ "$T" != 256 ] && name="${name}_T$T"
  [ -f logs/$1/$name.done ] && return
  src=src_$1_T$T
  rm -rf $src && mkdir -p $src logs/$1
  # (the mirror lacks some wandb log blobs of that commit; the sources are complete)
  git -C repo archive 5807025 Markov-Simple/src 2>/dev/null | tar -x -C $src
  if [ "$1" != float32 ]; then (cd $src && python ../patch_precision.py $1); fi
  (cd $src && OMP_NUM_THREADS=1 PYTHONPATH=../stubs python ../run_official.py $3 work_$name \
    --device cpu --no_compile --p 0.5 --q 0.8 --init $2 --iterations 1000 \
    --sequence_length $T --batch_size 16 --n_embd 8 --lr 0.002 --eval_freq 25) \
    > logs/$1/$name.log 2>&1 && touch logs/$1/$name.done
}
for mode in float16 float16-scaled bfloat16; do run $mode good 0; done
for mode in float16 float16-scaled; do run $mode base 0; done
run float16 good 0 1024
run float16 base 0 1024
run float16-scaled good 0 1024
run float16-scaled base 0 1024
run float32 base 0 1024
