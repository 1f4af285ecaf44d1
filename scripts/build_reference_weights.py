"""Train and package the digits-5 reference encoder (the offline default model).

Writes subclassbench/weights/digits_cnn.digits5_coarse.safetensors and its
card through the same trainer as `subclassbench train`. Deterministic for the
recorded seed on a given CPU build of torch and thread count.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from subclassbench.tasks.task import load_task
from subclassbench.training.trainer import Recipe, package_run, train

OUT = Path(__file__).resolve().parent.parent / "subclassbench" / "weights"
RECIPE = Recipe(epochs=30, batch_size=64, lr=0.05, nesterov=False, augment="none", seed=0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        card = train(load_task("digits-5"), "digits_cnn", "superclass", Path(tmp) / "run", RECIPE, progress=False)
        path = package_run(Path(tmp) / "run", "digits5_coarse", OUT)
    print(f"{path.name}: test acc {card['final_test_acc']:.4f}, sha256 {card['weights_sha256']}")


if __name__ == "__main__":
    main()
