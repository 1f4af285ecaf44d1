#!/usr/bin/env bash
# Train and evaluate reference encoders on the Tiny ImageNet BREEDS-style tasks (docs/breeds.md), then submit
# their rows. Each run trains on one task's superclass (or subclass) labels and is scored on that task.
#
#   bash scripts/tiny_imagenet_references.sh                      # the full recipe (a GPU: minutes per run)
#   ARCHS=cifar_resnet20 SEEDS=0 EPOCHS=15 DEVICE=cpu bash scripts/tiny_imagenet_references.sh   # what fits a CPU
#
# ARCHS: builtin architectures (resnet18_small and vit_tiny_p4 read 64 px natively; cifar_resnet20 reads the
# images downsampled to its 32 px). LABELS: superclass, subclass, none (untrained). TASKS: breeds-tiny16 and its
# shuffled control. Runs land in runs/tiny/<task>-<arch>-<labels>-s<seed>; rows in submissions/.
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/subclassbench
DATA=${DATA:-../shared/data/tiny-imagenet}
ARCHS=${ARCHS:-"resnet18_small vit_tiny_p4"}
SEEDS=${SEEDS:-"0 1 2"}
LABELS=${LABELS:-"superclass subclass none"}
TASKS=${TASKS:-"breeds-tiny16 breeds-tiny16-shuffled"}
EPOCHS=${EPOCHS:-60}
DEVICE=${DEVICE:-cuda}
SUBMIT=${SUBMIT:-1}
NOTE="Tiny ImageNet (Le & Yang 2015) via ../shared/data/tiny-imagenet: real ImageNet photographs at 64 px, 125 training images per class (of 500), all 50 validation images per class"

for task in $TASKS; do
  for arch in $ARCHS; do
    for labels in $LABELS; do
      for seed in $SEEDS; do
        run="runs/tiny/${task}-${arch}-${labels}-s${seed}"
        epochs=$EPOCHS
        [ "$labels" = none ] && epochs=0  # the seeded initialisation, recorded like any run
        train_labels=$labels
        [ "$labels" = none ] && train_labels=superclass
        "$SB" train --task "$task" --arch "$arch" --labels "$train_labels" --epochs "$epochs" --seed "$seed" \
          --data "$DATA" --device "$DEVICE" --out "$run"
        [ "$SUBMIT" = 1 ] || continue
        suffix=$labels
        [ "$labels" = superclass ] && suffix=coarse
        [ "$labels" = subclass ] && suffix=fine
        [ "$labels" = none ] && suffix=untrained
        name="tiny-${arch//_/-}-${task#breeds-}-${suffix}"  # e.g. tiny-cifar-resnet20-tiny16-coarse (shipped)
        granularity=$labels
        [ "$labels" = subclass ] && granularity=fine
        seed_args=()
        [ "$seed" != 0 ] && seed_args=(--seed "$seed")
        "$SB" submit --quiet --name "$name" --model "builtin:$arch" --weights "$run/model.safetensors" \
          --task "$task" --data "$DATA" --data-note "$NOTE" --labels "$granularity" --label-task "$task" \
          --training-data "$task train split (Tiny ImageNet, 125 images per class, 20% held out as val), $labels labels, $epochs epochs on $DEVICE" \
          --license MIT --citation "subclassbench reference encoder (this repository)." \
          --description "$arch trained on $task ($labels labels, $epochs epochs, $DEVICE); recipe in scripts/tiny_imagenet_references.sh" \
          "${seed_args[@]}"
      done
    done
  done
done
