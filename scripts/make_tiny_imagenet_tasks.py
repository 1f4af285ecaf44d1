"""Write the Tiny ImageNet BREEDS-style task files (docs/breeds.md) from ../shared: breeds-tiny16, its shuffled
control, and tiny-imagenet-ood16 (the Tiny ImageNet classes in neither, their class-disjoint OOD set).

    python scripts/make_tiny_imagenet_tasks.py [--shared ../shared] [--out subclassbench/tasks/builtin] [--check]

``--check`` compares with the files there instead of writing (the test suite runs it when ../shared exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from subclassbench.tasks.breeds import (
    BuildOptions,
    Hierarchy,
    build_task_file,
    ood_complement_yaml,
    read_class_list,
    same_classes_by_wordnet,
)

REPO = Path(__file__).resolve().parent.parent
# CIFAR-10's classes as WordNet synsets: Tiny ImageNet classes below one of them are declared the same class
# (tabby cat = cat), so an encoder trained on CIFAR-10 is told its OOD set holds classes it saw. airplane
# (n02691156), deer (n02430045), horse (n02374451) and ship (n04194289) have no Tiny ImageNet class below them
# in the BREEDS hierarchy.
CIFAR10_SYNSETS = {
    "0": "n02691156", "1": "n02958343", "2": "n01503061", "3": "n02121808", "4": "n02430045",
    "5": "n02084071", "6": "n01639765", "7": "n02374451", "8": "n04194289", "9": "n04490091",
}  # fmt: skip
OOD = "tiny-imagenet-ood16"
CITE = (
    "Images: Le, Y. & Yang, X. (2015), Tiny ImageNet Visual Recognition Challenge, Stanford CS231N; drawn from "
    "ImageNet (Deng et al., 2009, CVPR)."
)
SHUFFLED = (
    "Shuffled control (Nguyen & Kornblith 2023): the same 64 subclasses pooled, shuffled with RandomState(2) and "
    "re-chunked, so each superclass groups unrelated classes. "
)
DESCRIPTION = (
    "BREEDS-style task over Tiny ImageNet's 200 ImageNet classes: 16 superclasses x 4 subclasses at WordNet "
    "level 4 of the BREEDS hierarchy (whole tree), split 'rand', seed 2. {kind}Images are Tiny ImageNet's 64 px "
    "ImageNet photographs, read at 64 px. Clusterability is scored on the 50 validation images of every subclass "
    "(3,200); the training images (125 per class in the shared copy, 500 in the full dataset) form the train "
    f"split, minus a fixed hash-selected 20% held out as 'val' for choosing the committed layer. OOD set: {OOD}, "
    "the 136 Tiny ImageNet classes in neither this task nor its control."
)


def files(shared: Path) -> dict[str, str]:
    hierarchy_dir = shared / "breeds" / "hierarchy"
    wnids = shared / "data" / "tiny-imagenet" / "wnids.txt"
    out = {}
    for shuffled in (False, True):
        name = "breeds-tiny16" + ("-shuffled" if shuffled else "")
        options = BuildOptions(
            level=4, subclasses=4, shuffled=shuffled, name=name, classes=str(wnids), image_size=64,
            val_fraction=0.2, description=DESCRIPTION.format(kind=SHUFFLED if shuffled else ""), citation=CITE,
            ood_sets=(OOD,),
        )  # fmt: skip
        out[name] = build_task_file(hierarchy_dir, options)
    listed, record = read_class_list(wnids)
    hierarchy = Hierarchy.from_dir(hierarchy_dir, only=listed)
    citation = "Le, Y. & Yang, X. (2015). Tiny ImageNet Visual Recognition Challenge. Stanford CS231N. " + (
        "Images from ImageNet: Deng, J. et al. (2009), CVPR."
    )
    same = {"cifar10-5": same_classes_by_wordnet(hierarchy, CIFAR10_SYNSETS)}
    out[OOD] = ood_complement_yaml(OOD, hierarchy, listed, record, ["breeds-tiny16"], 64, citation, same_classes=same)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "subclassbench" / "tasks" / "builtin")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for name, text in files(args.shared).items():
        path = args.out / f"{name}.yaml"
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"error: {', '.join(stale)} differ from a fresh derivation; run scripts/make_tiny_imagenet_tasks.py")
    return 2 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
