#!/usr/bin/env bash
# The paper's IN-S1 run (Table 1, SPEC sections 2 and 8): CIFAR-style ResNet-18 on
# Imagenette (10 ImageNet classes, very likely the paper's IN-S1), dense, Top-K 20%
# after layer2, and Top-K with mean replacement; then accuracy on val, on an
# AdaIN-stylized val (alpha 0.5) and shape bias on cue-conflict (dog and truck
# are the two cue-conflict categories Imagenette covers).
#
# Get the data yourself (not downloadable from here):
#   wget https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz && tar xzf imagenette2.tgz
#   -> imagenette2/train/<wnid>/*.JPEG, imagenette2/val/<wnid>/*.JPEG
# Stylized val (optional): AdaIN's vgg_normalised.pth and decoder.pth from the
# Releases of https://github.com/naoto0804/pytorch-AdaIN, and a folder of style
# images (e.g. paintings), in ADAIN_DIR and STYLE_DIR.
# Cue-conflict stimuli: found in $TOPK_PLUGIN_CUE_CONFLICT or the cache
# (topk-plugin shape-bias downloads them), else shape bias is skipped.
#
#   bash examples/train_imagenette.sh [imagenette2] [runs]
# The stride-1 stem keeps layer1 at 224x224, so this ResNet-18 costs far more than
# torchvision's (GPU recommended; mixed precision is on). More GPUs:
#   NPROC=4 bash examples/train_imagenette.sh
set -euo pipefail
DATA=${1:-imagenette2}
RUNS=${2:-runs}
NPROC=${NPROC:-1}

stylized=()
if [[ -n "${ADAIN_DIR:-}" && -n "${STYLE_DIR:-}" ]]; then
  [[ -d "$DATA/val-stylized" ]] || topk-plugin stylize --content "$DATA/val" --style "$STYLE_DIR" \
      --encoder "$ADAIN_DIR/vgg_normalised.pth" --decoder "$ADAIN_DIR/decoder.pth" --alpha 0.5 --out "$DATA/val-stylized"
  stylized=(--stylized-val "$DATA/val-stylized")
fi

for model in resnet18_cifar resnet18_cifar_topk20 resnet18_cifar_topk20mean; do
  resume=()
  [[ -f "$RUNS/$model/checkpoint.pt" ]] && resume=(--resume)  # rerun the script to continue
  torchrun --standalone --nproc_per_node "$NPROC" -m topk_plugin train --model "$model" \
      --data "$DATA/train" --val "$DATA/val" "${stylized[@]}" \
      --epochs 50 --batch-size 32 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --img-size 224 \
      --out "$RUNS/$model" "${resume[@]}"
done
