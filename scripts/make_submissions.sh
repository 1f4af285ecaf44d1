#!/usr/bin/env bash
# Recreate the reference submissions under submissions/ (the leaderboard's first rows).
#
#   bash scripts/make_submissions.sh            # digits rows (no data needed) + CIFAR rows if ../shared is present
#   SHARED=/path/to/shared bash scripts/make_submissions.sh
#
# Every row can be re-run offline: digits ship with scikit-learn; the CIFAR rows
# use the JPEG-degraded CIFAR-10 copies and the BSD-2 CIFAR ResNets in ../shared.
# Then: subclassbench validate && subclassbench leaderboard build
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/subclassbench
SHARED=${SHARED:-../shared}
OURS="Our own reference weights, released with subclassbench under its MIT license."
CITE_SB="subclassbench reference encoder (this repository)."

#   ONLY="cifar-resnet32 cifar-resnet44" bash scripts/make_submissions.sh   # just these rows (e.g. in parallel)
submit() {
  local name=$2  # every call below starts with --name NAME
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  "$SB" submit --quiet "$@"
}

# ---- digits-5: scikit-learn digits, no download -------------------------------------------
submit --name digits-cnn-coarse --model builtin:digits_cnn.digits5_coarse --task digits-5 \
  --labels superclass --label-task digits-5 --training-data "digits-5 train split (1,077 digits), superclass labels" \
  --license MIT --citation "$CITE_SB" --description "Small CNN trained on the 5 superclasses of digits-5 (packaged)" \
  --data-note "sklearn.datasets.load_digits (ships with scikit-learn)"

# The shipped weights are the reference: a re-training on another torch build can differ in the last
# bits (the recipe below reproduces them only on the build that made them), so re-runs reuse them.
if [ -f submissions/digits-cnn-fine/weights.safetensors ]; then
  mkdir -p runs/digits-cnn-fine
  cp submissions/digits-cnn-fine/weights.safetensors runs/digits-cnn-fine/model.safetensors
elif [ ! -f runs/digits-cnn-fine/card.json ]; then
  "$SB" train --task digits-5 --arch digits_cnn --labels subclass --epochs 30 --batch-size 64 --lr 0.05 \
    --augment none --seed 0 --out runs/digits-cnn-fine
fi
submit --name digits-cnn-fine --model builtin:digits_cnn --weights runs/digits-cnn-fine/model.safetensors \
  --task digits-5 --labels fine --training-data "digits-5 train split (1,077 digits), all 10 digit labels" \
  --license MIT --citation "$CITE_SB" --description "The same CNN trained by subclassbench train on the 10 fine labels (30 epochs; seeds 0, 1 and 2)" \
  --data-note "sklearn.datasets.load_digits (ships with scikit-learn)"

# Two more training seeds of the same recipe: the row shows mean ± std over seeds 0-2, and its interval
# resamples both the test images and the seeds (docs/uncertainty.md).
for seed in 1 2; do
  if [ ! -f runs/digits-cnn-fine-seed$seed/card.json ]; then
    "$SB" train --task digits-5 --arch digits_cnn --labels subclass --epochs 30 --batch-size 64 --lr 0.05 \
      --augment none --seed $seed --out runs/digits-cnn-fine-seed$seed
  fi
  submit --name digits-cnn-fine --model builtin:digits_cnn --weights runs/digits-cnn-fine-seed$seed/model.safetensors \
    --task digits-5 --seed $seed
done

submit --name digits-cnn-random --model builtin:digits_cnn --task digits-5 --labels none \
  --training-data "none: random initialisation (torch seed 0)" --license MIT --citation "$CITE_SB" \
  --description "Untrained control: the CNN at its seeded random initialisation" \
  --data-note "sklearn.datasets.load_digits (ships with scikit-learn)"

# ---- digits-id5: trained on digits 0-4 only; digits 5-9 are its class-disjoint OOD set -------
if [ ! -f runs/digits-cnn-id5/card.json ]; then
  "$SB" train --task digits-id5 --arch digits_cnn --labels subclass --epochs 30 --batch-size 64 --lr 0.05 \
    --augment none --seed 0 --out runs/digits-cnn-id5
fi
submit --name digits-cnn-id5 --model builtin:digits_cnn --weights runs/digits-cnn-id5/model.safetensors \
  --task digits-id5 --labels fine --label-task digits-id5 \
  --training-data "digits-id5 train split (digits 0-4 of digits-5's train split), their 5 labels" \
  --license MIT --citation "$CITE_SB" \
  --description "The digits CNN trained on digits 0-4 only (30 epochs; seeds 0, 1 and 2); digits 5-9 are out of distribution" \
  --data-note "sklearn.datasets.load_digits (ships with scikit-learn)"
for seed in 1 2; do
  if [ ! -f runs/digits-cnn-id5-seed$seed/card.json ]; then
    "$SB" train --task digits-id5 --arch digits_cnn --labels subclass --epochs 30 --batch-size 64 --lr 0.05 \
      --augment none --seed $seed --out runs/digits-cnn-id5-seed$seed
  fi
  submit --name digits-cnn-id5 --model builtin:digits_cnn --weights runs/digits-cnn-id5-seed$seed/model.safetensors \
    --task digits-id5 --seed $seed
done

# ---- CIFAR-10 tasks: ../shared data and weights --------------------------------------------
if [ ! -d "$SHARED/data" ] || [ ! -d "$SHARED/weights" ]; then
  echo "no $SHARED/data or $SHARED/weights: CIFAR rows skipped"
  exit 0
fi
# The ResNet-20 rows (pretrained and both coarse-trained) also score transfer (~4 min per task on
# 2 CPU cores); the deeper ResNets score clusterability with the committed layer only, to fit the
# project machine's time. On a bigger machine add transfer with --metrics clusterability,transfer.
CIFAR_NOTE="CIFAR-10 from ../shared/data (cifar10_train.npz, cifar10_test.npz): JPEG-degraded copies of the real images (see that folder's README), not the lossless originals"
IDELBAYEV="Idelbayev, Y. (2018). Proper ResNet implementation for CIFAR10/CIFAR100 in PyTorch. github.com/akamaster/pytorch_resnet_cifar10. Architecture: He et al. (2016), Deep Residual Learning for Image Recognition, section 4.2."
for depth in 20 32 44 56; do
  weights=$(ls "$SHARED"/weights/resnet${depth}-*.th)
  name=cifar-resnet${depth}
  metrics=clusterability; [ "$depth" = 20 ] && metrics=clusterability,transfer
  submit --name $name --model builtin:cifar_resnet${depth} --weights "$weights" \
    --task cifar10-5 --task cifar10-5-semantic --data "$SHARED/data" --metrics $metrics \
    --labels fine --training-data "CIFAR-10 train (50,000 images), all 10 labels" --license BSD-2-Clause \
    --citation "$IDELBAYEV" --description "Pretrained CIFAR-10 ResNet-${depth} (akamaster/pytorch_resnet_cifar10), converted to safetensors" \
    --data-note "$CIFAR_NOTE"
  python3 - "$name" <<'EOF'
import sys
from pathlib import Path
notice = Path("submissions") / sys.argv[1] / "NOTICE"
notice.write_text("""The weights in this folder (weights.safetensors) are converted from
akamaster/pytorch_resnet_cifar10 (pretrained_models/, commit d5489e8995e81e91ce6b1d69dcc98ad579b0b153),
distributed under the BSD 2-Clause license:

Copyright (c) 2018, Yerlan Idelbayev

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
""")
EOF
done

for tag in cifar10_5_coarse cifar10_5_semantic_coarse; do
  task=${tag%_coarse}; task=${task//_/-}
  submit --name cifar-resnet20-${tag//_/-} --model builtin:cifar_resnet20.$tag \
    --task cifar10-5 --task cifar10-5-semantic --data "$SHARED/data" --metrics clusterability,transfer \
    --labels superclass --label-task "$task" \
    --training-data "CIFAR-10 train (50,000 JPEG-degraded images from ../shared/data; all of them, i.e. v1 of the task, which includes v2's val split), superclass labels of $task" \
    --license MIT --citation "$CITE_SB" --description "CIFAR ResNet-20 trained by subclassbench on the superclass labels of $task (packaged)" \
    --data-note "$CIFAR_NOTE"
done

# ---- cifar10-id5: ResNet-20 trained on 5 CIFAR-10 classes; the other 5 are its OOD set -------
# 8 epochs on 22,498 images took ~36 min on 2 CPU cores (one torch thread).
if [ ! -f runs/cifar-resnet20-id5/card.json ]; then
  "$SB" train --task cifar10-id5 --arch cifar_resnet20 --labels subclass --epochs 8 --lr 0.1 --batch-size 128 \
    --threads 1 --data "$SHARED/data" --out runs/cifar-resnet20-id5
fi
submit --name cifar-resnet20-cifar10-id5 --model builtin:cifar_resnet20 \
  --weights runs/cifar-resnet20-id5/model.safetensors --task cifar10-id5 --data "$SHARED/data" \
  --metrics clusterability,transfer --labels fine --label-task cifar10-id5 \
  --training-data "cifar10-id5 train split (22,498 JPEG-degraded CIFAR-10 images of airplane, automobile, bird, cat, deer), their 5 labels" \
  --license MIT --citation "$CITE_SB" \
  --description "CIFAR ResNet-20 trained by subclassbench on 5 CIFAR-10 classes (8 epochs, seed 0); the other 5 classes are out of distribution" \
  --data-note "$CIFAR_NOTE"
