"""Package the coarse-trained CIFAR ResNet-20 runs as builtin weights tags.

python scripts/package_cifar_reference.py runs/r20-cifar10-5-coarse:cifar10_5_coarse \
    runs/r20-cifar10-5-semantic-coarse:cifar10_5_semantic_coarse
"""

from __future__ import annotations

import sys
from pathlib import Path

from subclassbench.training.trainer import package_run

OUT = Path(__file__).resolve().parent.parent / "subclassbench" / "weights"

if __name__ == "__main__":
    for item in sys.argv[1:]:
        run, tag = item.split(":")
        print(package_run(run, tag, OUT))
