#!/usr/bin/env bash
# Train the bundled styles on one GPU at once, each from its shipped network (init=), for a
# fixed wall time, and leave the exported networks, logs and TensorBoard runs in OUTDIR.
#   bash benchmarks/gpu/train_bundled.sh PACK OUTDIR [MAX_TIME DD:HH:MM:SS] [BATCH] [STYLES...]
# PACK comes from `python benchmarks/gpu/pack.py` (photos, cut VGG19, wheels). The GPU's own
# Python must hold torch, torchvision, pytorch-lightning, tensorboard, pyarrow and pillow.
# Extra Hydra overrides for every style: FAST_NST_OVERRIDES="optim=adam_cosine ...". Also:
# PYTHON (python3), TRAINER (gpu), WORKERS (3 data workers per style), SKIP_WHEELS=1 (the
# Python already has hydra-core and datasets), RUNS (run folders), SITE (where wheels go).
set -u -f   # -f: overrides such as loss.style_layers=[a,b] are not file patterns
PACK=$(realpath "${1:?pack folder}"); OUTDIR=$(realpath -m "${2:?output folder}")
MAX_TIME=${3:-00:00:07:00}; BATCH=${4:-8}; shift $(( $# < 4 ? $# : 4 ))
STYLES=${*:-udnie the_scream great_wave starry_night}
PY=${PYTHON:-python3}; SITE=${SITE:-/tmp/fast_nst_site}; RUNS=${RUNS:-/tmp/fast_nst_runs}
mkdir -p "$OUTDIR" "$RUNS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee "$OUTDIR/env.txt" || true
install() { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$@" >>"$OUTDIR/install.log" 2>&1; }
probe() {  # the imports and a real imagefolder load (datasets meets this image's pyarrow)
  HF_DATASETS_CACHE=$RUNS/hf-probe PHOTOS=$PACK/shared/data/content $PY -c "import os, datasets
import hydra, fast_nst.apps.train
datasets.load_dataset('imagefolder', data_dir=os.environ['PHOTOS'], split='train')
print('datasets', datasets.__version__)" >>"$OUTDIR/install.log" 2>&1; }
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  set +f; wheels=("$PACK"/wheels/*.whl); old=("$PACK"/wheels-old-pyarrow/*.whl); set -f
  install "${wheels[@]}"
  probe || { echo "datasets 5 failed here; trying the older set"; install "${old[@]}" && probe; } \
    || { echo "cannot import the training stack:"; tail -20 "$OUTDIR/install.log"; exit 1; }
fi
$PY -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)" | tee -a "$OUTDIR/env.txt"
declare -A pids
for style in $STYLES; do
  rm -rf "$RUNS/bundle/$style"   # the run folder is fixed: an earlier run's export must not pass
  HF_DATASETS_CACHE=$RUNS/hf-$style $PY train.py experiment=bundle/$style init=models/$style.pt \
    trainer=${TRAINER:-gpu} trainer.max_steps=10000000 "++trainer.max_time=$MAX_TIME" \
    data.batch_size="$BATCH" data.num_workers="${WORKERS:-3}" paths.shared="$PACK/shared" \
    vgg.weights="$PACK/shared/weights/vgg19-caffe-relu4_3-fp16.pth" paths.outputs="$RUNS" \
    trainer.val_check_interval=2000 callbacks.model_checkpoint.every_n_train_steps=10000000 \
    callbacks.progress_bar.refresh_rate=500 ${FAST_NST_OVERRIDES:-} >"$OUTDIR/$style.log" 2>&1 &
  pids[$style]=$!
done
failed=0
for style in $STYLES; do
  run=$RUNS/bundle/$style
  if wait "${pids[$style]}" && [ -f "$run/$style.pt" ]; then cp "$run/$style.pt" "$OUTDIR/"
  else echo "$style: failed, no export"; failed=1; fi
  echo "== $style"; grep -a -E "precision|Trainer was signaled|max_time|Error|error" "$OUTDIR/$style.log" | tail -4
  tr '\r' '\n' <"$OUTDIR/$style.log" | grep -a -E "it/s|s/it" | tail -1
done
# What comes back from such a machine is limited in size: the logs and configs in one archive,
# the TensorBoard runs (image grids: ~12 MB per style for 7 minutes) in another.
set +f; cd "$OUTDIR" && logs=(*.log) && cd "$RUNS" || exit 1
tar -czf "$OUTDIR/logs.tar.gz" --exclude='*.ckpt' --exclude=tb bundle -C "$OUTDIR" "${logs[@]}" \
  && rm -f "$OUTDIR"/*.log
tbs=(bundle/*/tb)
[ -e "${tbs[0]}" ] && tar -czf "$OUTDIR/tensorboard.tar.gz" "${tbs[@]}"
cd - >/dev/null
ls -la "$OUTDIR"
exit $failed
