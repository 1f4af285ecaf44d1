"""Train and package the digits-5 reference encoder (the offline default model).

Writes subclassbench/weights/digits_cnn.digits5_coarse.safetensors and its
card. Deterministic for the recorded seed on a given CPU build of torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from subclassbench.tasks import load_task
from subclassbench.training import Recipe, save_weights, train_classifier

OUT = Path(__file__).resolve().parent.parent / "subclassbench" / "weights"


def main() -> None:
    task = load_task("digits-5")
    start = time.perf_counter()
    model, card = train_classifier(task, "digits_cnn", labels="coarse", recipe=Recipe())
    card["train_seconds"] = round(time.perf_counter() - start, 1)
    card = save_weights(model, card, OUT / "digits_cnn.digits5_coarse.safetensors")
    print(f"test acc {card['final_test_acc']:.4f}, sha256 {card['weights_sha256']}, {card['train_seconds']} s")


if __name__ == "__main__":
    main()
