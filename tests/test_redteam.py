"""Red team: bad input and faults, as a careless user or an attacker would supply them.

Every case runs the real entry point (``subclassbench.cli.main``) in a fresh
sandbox folder (the working directory) and asserts the contract of the
project: exit code 2, exactly one ``error:`` line on stderr and no traceback,
nothing written outside the sandbox's allowed places, and no code executed
from data (a planted payload would create ``PWNED``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from subclassbench.cli import main
from subclassbench.tasks.task import builtin_tasks_dir
from tests.conftest import CLASS_NAMES, REPO, add_transfer, make_images, tiny_task_raw

PWNED = "PWNED"


class Payload:
    """Unpickling this object would create a file named PWNED in the working directory."""

    def __reduce__(self) -> tuple:
        return (open, (PWNED, "w"))


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list[str]]  # builds the sandbox, returns the command line
    # Paths (relative to the sandbox) that the command may create; everything else must stay as set up.
    may_create: tuple[str, ...] = ()
    code: int = 2
    after: Callable[[Path], None] | None = None  # extra checks on the sandbox


def run_main(args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- building blocks


def digits_raw() -> dict:
    return yaml.safe_load((builtin_tasks_dir() / "digits-5.yaml").read_text())


def write_yaml(path: Path, raw: object) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def task_case(name: str, mutate: Callable[[dict], object], suffix: str = ".yaml") -> Case:
    def setup(box: Path) -> list[str]:
        raw = mutate(digits_raw())
        path = box / f"t{suffix}"
        if isinstance(raw, bytes):
            path.write_bytes(raw)
        elif isinstance(raw, str):
            path.write_text(raw)
        else:
            write_yaml(path, raw)
        return ["tasks", "show", str(path)]

    return Case(f"task-{name}", setup)


def tiny_task(box: Path, transfer: bool = False) -> Path:
    raw = tiny_task_raw()
    raw["splits"]["test"].pop("expected_count")  # the data cases vary the number of samples
    return write_yaml(box / "tiny-images.yaml", add_transfer(raw) if transfer else raw)


def npz_case(name: str, make: Callable[[Path], Path], extra: tuple[str, ...] = ()) -> Case:
    def setup(box: Path) -> list[str]:
        task = tiny_task(box)
        data = make(box)
        return [
            "evaluate",
            "--task",
            str(task),
            "--data",
            str(data),
            "--metrics",
            "clusterability",
            "-q",
            "--out",
            "out/r.json",
            "--no-cache",
            *extra,
        ]

    return Case(f"data-{name}", setup)


def save_npz(box: Path, name: str = "tiny_test.npz", **arrays: object) -> Path:
    images, labels = make_images()
    content = {"images": images, "labels": labels, **arrays}
    content = {k: v for k, v in content.items() if v is not None}
    path = box / name
    np.savez(path, **content)
    return path


def image_folder(box: Path, empty_class: str | None = None, extra_class: str | None = None) -> Path:
    from PIL import Image

    images, labels = make_images(n_per_class=4)
    root = box / "folder"
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        target = root / "test" / CLASS_NAMES[label]
        target.mkdir(parents=True, exist_ok=True)
        if CLASS_NAMES[label] != empty_class:
            Image.fromarray(img).save(target / f"{i:04d}.png")
    if extra_class:
        (root / "test" / extra_class).mkdir()
    return root


# --------------------------------------------------------------------------- A. usage


USAGE = [
    ["frob"],
    ["evaluate", "--bogus"],
    ["evaluate", "--batch-size", "0"],
    ["evaluate", "--batch-size", "x"],
    ["tasks", "show"],
    ["evaluate", "--device", "tpu"],
    ["evaluate", "--device", "cuda:7"],
    ["evaluate", "--metrics", "nope"],
    ["evaluate", "--image-preprocessing", "sideways"],
    ["evaluate", "--model", "resnet"],
    ["evaluate", "--model", "hub:x"],
    ["evaluate", "--model", "builtin:"],
    ["evaluate", "--model", "builtin:nonet"],
    ["evaluate", "--model", "builtin:digits_cnn.nope"],
    ["evaluate", "--task", "nope"],
    ["evaluate", "--split", "nope"],
    ["evaluate", "--layers", "nope"],
    ["extract", "--shard", "x"],
    ["extract", "--shard", "3/2"],
    ["cache", "prune"],
    ["train", "--task", "digits-5", "--arch", "nope", "--out", "run"],
    ["train", "--task", "digits-5", "--arch", "digits_cnn", "--labels", "medium", "--out", "run"],
    ["train", "--task", "digits-5", "--arch", "digits_cnn", "--augment", "rotate", "--out", "run"],
    ["train", "--task", "digits-5", "--arch", "cifar_resnet20", "--norm", "gn", "--out", "run"],
    ["run", "--models", "missing.yaml", "--tasks", "missing.yaml"],
    ["leaderboard", "build", "--submissions", "nonexistent", "--out", "lb"],
    ["validate", "nonexistent"],
    ["verify", "nonexistent"],
    ["compare", "--model", "builtin:digits_mlp", "--model", "builtin:digits_mlp", "--model", "builtin:mlp"],
    ["compare", "--model", "builtin:digits_mlp", "--pair", "x"],
    ["agreement", "nonexistent-run"],
    ["tasks", "build-breeds", "--hierarchy", "nowhere", "--preset", "living17", "--out", "t.yaml"],
    ["tasks", "build-breeds", "--hierarchy", "nowhere"],
    ["score", "--model", "builtin:digits_mlp", "--cache-dir", "cache", "--metrics", "clusterability"],
]
CASES: list[Case] = [Case(f"usage-{i:02d}-{'-'.join(a)[:40]}", lambda _b, a=a: list(a)) for i, a in enumerate(USAGE)]


# --------------------------------------------------------------------------- B. task files


def _set(raw: dict, path: str, value: object) -> dict:
    node = raw
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


def _drop(raw: dict, key: str) -> dict:
    raw.pop(key)
    return raw


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _rename_split(raw: dict, old: str, new: str) -> dict:
    raw["splits"][new] = raw["splits"].pop(old)
    if raw.get("evaluation_split") == old:
        raw["evaluation_split"] = new
    return raw


TASK_MUTATIONS: list[tuple[str, Callable[[dict], object]]] = [
    ("alias-bomb", lambda r: ALIAS_BOMB),
    ("a-list", lambda r: ["name", "digits"]),
    ("a-scalar", lambda r: "just text"),
    ("empty", lambda r: ""),
    ("binary", lambda r: bytes(range(256)) * 4),
    ("python-tag", lambda r: "name: !!python/object/apply:builtins.open ['PWNED', 'w']\n"),
    ("missing-name", lambda r: _drop(r, "name")),
    ("name-traversal", lambda r: _set(r, "name", "../../evil")),
    ("name-absolute", lambda r: _set(r, "name", "/tmp/evil")),
    ("name-upper", lambda r: _set(r, "name", "Digits")),
    ("name-hidden", lambda r: _set(r, "name", ".digits")),
    ("split-traversal", lambda r: _rename_split(r, "val", "../../evil")),
    ("split-slash", lambda r: _rename_split(r, "val", "a/b")),
    ("source-split-traversal", lambda r: _set(r, "splits/test/source_split", "../x")),
    ("superclass-ids-shared", lambda r: _set(r, "hierarchy/superclasses/1/id", 0)),
    ("subclass-in-two-superclasses", lambda r: _set(r, "hierarchy/superclasses/1/subclasses/0/id", 0)),
    ("single-subclass", lambda r: _set(r, "hierarchy/superclasses/0/subclasses", [{"id": 0, "name": "zero"}])),
    ("unknown-evaluation-split", lambda r: _set(r, "evaluation_split", "holdout")),
    ("validation-is-evaluation", lambda r: _set(r, "validation_split", "test")),
    ("duplicate-manifest-ids", lambda r: _set(r, "splits/test/ids", ["1", "1", "2"])),
    ("overlapping-splits", lambda r: _set(r, "splits/val/ids", r["splits"]["test"]["ids"][:3])),
    ("unknown-transfer-split", lambda r: _set(r, "transfer/ood_split", "elsewhere")),
    ("transfer-overlap", lambda r: _set(r, "transfer/target", list(r["transfer"]["source"]))),
    ("transfer-unknown-subclass", lambda r: _set(r, "transfer/source", [*r["transfer"]["source"][:-1], 99])),
    ("unknown-data-source", lambda r: _set(r, "data/source", "ftp")),
    ("version-text", lambda r: _set(r, "version", "two")),
    ("no-hierarchy", lambda r: _drop(r, "hierarchy")),
    ("huge", lambda r: "# " + "x" * (17 * 1024 * 1024)),
    ("unclosed-flow", lambda r: "name: [digits\n"),
]
CASES += [task_case(name, mutate) for name, mutate in TASK_MUTATIONS]
CASES += [
    task_case("json-nan", lambda r: json.dumps(r).replace('"version": 2', '"version": NaN'), ".json"),
    task_case("json-syntax", lambda r: json.dumps(r)[:-5], ".json"),
]


def _shadowed_name(box: Path) -> list[str]:
    folder = box / "mytasks"
    folder.mkdir()
    write_yaml(folder / "digits-5.yaml", _set(digits_raw(), "name", "other"))
    os.environ["SUBCLASSBENCH_TASKS"] = str(folder)
    return ["tasks", "show", "digits-5"]


CASES.append(Case("task-name-differs-from-file", _shadowed_name))


# --------------------------------------------------------------------------- C. data


def _truncated(box: Path) -> Path:
    path = save_npz(box)
    path.write_bytes(path.read_bytes()[:200])
    return path


def _object_array(box: Path) -> Path:
    images, _ = make_images()
    path = box / "tiny_test.npz"
    np.savez(path, images=images, labels=np.array([Payload()] * len(images), dtype=object))
    return path


def _corrupt_png(box: Path) -> Path:
    root = image_folder(box)
    next((root / "test" / "cat").glob("*.png")).write_bytes(b"\x89PNG not really")
    return root


def _bad_hf(box: Path) -> Path:
    root = box / "hf"
    root.mkdir()
    (root / "dataset_info.json").write_text("{not json")
    (root / "state.json").write_text("[]")
    return root


DATA_CASES = [
    ("truncated-npz", _truncated),
    ("text-as-npz", lambda b: (b / "tiny_test.npz").write_text("hello") and b / "tiny_test.npz"),
    ("zip-not-npz", lambda b: _zip(b)),
    ("no-labels", lambda b: _without(b, "labels")),
    ("labels-n-by-1", lambda b: save_npz(b, labels=make_images()[1][:, None])),
    ("labels-fractional", lambda b: save_npz(b, labels=make_images()[1] + 0.5)),
    ("labels-nan", lambda b: save_npz(b, labels=np.full(40, np.nan))),
    ("labels-too-few", lambda b: save_npz(b, labels=make_images()[1][:-3])),
    ("labels-object-pickle", _object_array),
    ("images-float", lambda b: save_npz(b, images=make_images()[0].astype(np.float32))),
    ("images-gray", lambda b: save_npz(b, images=make_images()[0][..., 0])),
    ("images-four-channels", lambda b: save_npz(b, images=np.concatenate([make_images()[0]] * 2, axis=3)[..., :4])),
    ("source-files-short", lambda b: save_npz(b, source_files=np.array(["a", "b"]))),
    ("source-files-duplicate", lambda b: save_npz(b, source_files=np.array(["same"] * 40))),
    ("empty-arrays", lambda b: save_npz(b, images=np.zeros((0, 16, 16, 3), np.uint8), labels=np.zeros(0, np.int64))),
    ("labels-outside-hierarchy", lambda b: save_npz(b, labels=np.full(40, 9))),
    ("missing-subclass", lambda b: save_npz(b, labels=np.where(make_images()[1] == 1, 0, make_images()[1]))),
    ("path-missing", lambda b: b / "nowhere.npz"),
    ("unsupported-file", lambda b: (b / "data.csv").write_text("1,2") and b / "data.csv"),
    ("empty-class-folder", lambda b: image_folder(b, empty_class="dog")),
    ("unknown-class-folder", lambda b: image_folder(b, extra_class="zebra")),
    ("corrupt-png", _corrupt_png),
    ("folder-without-images", lambda b: (b / "empty" / "test").mkdir(parents=True) or b / "empty"),
    ("corrupt-saved-hf", _bad_hf),
]


def _zip(box: Path) -> Path:
    path = box / "tiny_test.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", b"garbage")
        archive.writestr("labels.npy", b"garbage")
    return path


def _without(box: Path, key: str) -> Path:
    images, labels = make_images()
    path = box / "tiny_test.npz"
    np.savez(path, **({"images": images} if key == "labels" else {"labels": labels}))
    return path


CASES += [npz_case(name, make) for name, make in DATA_CASES]


def _corrupt_train_split(box: Path) -> list[str]:
    task = tiny_task(box, transfer=True)
    data = box / "data"
    data.mkdir()
    save_npz(data, "tiny_test.npz")
    (data / "tiny_train.npz").write_bytes(b"PK\x03\x04 truncated")
    return ["evaluate", "--task", str(task), "--data", str(data), "-q", "--out", "out/r.json", "--no-cache"]


CASES.append(Case("data-corrupt-train-split-with-transfer", _corrupt_train_split))


# --------------------------------------------------------------------------- D. weights and cards


def _weights_case(name: str, make: Callable[[Path], Path]) -> Case:
    def setup(box: Path) -> list[str]:
        weights = make(box)
        return [
            "evaluate",
            "--model",
            "builtin:digits_cnn",
            "--weights",
            str(weights),
            "-q",
            "--out",
            "out/r.json",
            "--no-cache",
            "--metrics",
            "clusterability",
        ]

    return Case(f"weights-{name}", setup)


def _card(box: Path, **fields: object) -> Path:
    run = box / "run"
    run.mkdir()
    shutil.copy(REPO / "subclassbench/weights/digits_cnn.digits5_coarse.safetensors", run / "model.safetensors")
    card = json.loads((REPO / "subclassbench/weights/digits_cnn.digits5_coarse.json").read_text())
    card.update({"weights_file": "model.safetensors", **fields})
    (run / "card.json").write_text(json.dumps(card))
    return run


def _pickle_checkpoint(box: Path) -> Path:
    path = box / "evil.pt"
    torch.save({"state_dict": Payload()}, path)
    return path


WEIGHTS_CASES = [
    ("pickle-payload", _pickle_checkpoint),
    ("truncated-safetensors", lambda b: _truncate_copy(b, "w.safetensors")),
    ("random-safetensors", lambda b: (b / "w.safetensors").write_bytes(os.urandom(512)) and b / "w.safetensors"),
    ("random-pt", lambda b: (b / "w.pt").write_bytes(os.urandom(512)) and b / "w.pt"),
    ("wrong-shapes", lambda b: _save_state(b, {"conv1.weight": torch.zeros(3, 3)})),
    ("not-tensors", lambda b: _save_state(b, {"a": 1})),
    ("missing-file", lambda b: b / "absent.safetensors"),
    ("folder-without-card", lambda b: (b / "empty-run").mkdir() or b / "empty-run"),
    ("card-malformed", lambda b: (_card(b) / "card.json").write_text("{oops") and b / "run"),
    ("card-a-list", lambda b: (_card(b) / "card.json").write_text("[1, 2]") and b / "run"),
    ("card-traversal", lambda b: _card(b, weights_file="../../../etc/passwd")),
    ("card-absolute", lambda b: _card(b, weights_file="/etc/passwd")),
    ("card-not-a-string", lambda b: _card(b, weights_file=["model.safetensors"])),
    ("card-other-arch", lambda b: _card(b, arch="digits_mlp")),
    ("card-sha-mismatch", lambda b: _card(b, weights_sha256="0" * 64)),
]


def _truncate_copy(box: Path, name: str) -> Path:
    path = box / name
    data = (REPO / "subclassbench/weights/digits_cnn.digits5_coarse.safetensors").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _save_state(box: Path, state: dict) -> Path:
    path = box / "w.pt"
    torch.save(state, path)
    return path


CASES += [_weights_case(name, make) for name, make in WEIGHTS_CASES]


# --------------------------------------------------------------------------- E. results and submissions

SUBMISSION = REPO / "submissions" / "digits-cnn-coarse"


def _submission(box: Path) -> Path:
    subs = box / "subs"
    shutil.copytree(SUBMISSION, subs / SUBMISSION.name)
    return subs / SUBMISSION.name


def _edit_result(edit: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        folder = _submission(box)
        path = folder / "results" / "digits-5.json"
        doc = json.loads(path.read_text())
        new = edit(doc)
        path.write_text(new if isinstance(new, str) else json.dumps(doc, indent=2))
        return ["validate", str(box / "subs")]

    return setup


def _bump(path: str, by: float = 0.01) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        node, keys = doc, path.split("/")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last: int | str = int(keys[-1]) if isinstance(node, list) else keys[-1]
        node[last] = node[last] + by if isinstance(node[last], float) else node[last]

    return edit


SUMMARY_EDITS = [
    "summary/committed_ami",
    "summary/committed_within_superclass_acc",
    "summary/committed_reconstruction_acc",
    "summary/committed_superclass_acc",
    "summary/committed_gap",
    "summary/best_ami",
    "summary/best_within_superclass_acc",
    "summary/best_depth",
    "summary/last_ami",
    "summary/last_within_superclass_acc",
    "summary/last_reconstruction_acc",
    "summary/selection/per_layer_ami/A/0",
    "summary/transfer/best_id_acc",
    "summary/transfer/subpopulation_shift/subpop_refit/retained",
    "summary/transfer/subpopulation_shift/subpop_shift/best_acc",
    "summary/transfer/subpopulation_shift/subpop_refit/penultimate_acc",
    "layers/0/clusterability/ami",
    "layers/1/clusterability/ari",
    "layers/2/clusterability/nmi",
    "layers/3/clusterability/purity",
    "layers/3/clusterability/matched_acc",
    "layers/3/clusterability/within_superclass_acc",
    "layers/2/clusterability/ward/overcluster/0/ami",
    "layers/1/clusterability/per_superclass/0/ami",
    "layers/3/transfer/subpop_refit_acc",
]
RESULT_EDITS: list[tuple[str, Callable[[dict], object]]] = [(f"edit-{p}", _bump(p)) for p in SUMMARY_EDITS]
RESULT_EDITS += [
    ("committed-layer-moved", lambda d: _set(d, "summary/committed_layer", "stem")),
    ("best-layer-moved", lambda d: _set(d, "summary/best_layer", "stem")),
    ("tunnel-invented", lambda d: _set(d, "summary/tunnel", {"start": "stem", "strength": "strong"})),
    ("ood-retained-invented", lambda d: _set(d, "summary/ood_retained", 80.0)),
    ("ward-factors-reordered", lambda d: d["layers"][0]["clusterability"]["ward"]["overcluster"].reverse()),
    ("per-layer-ami-short", lambda d: _set(d, "summary/selection/per_layer_ami", [0.5])),
    ("superclass-n", lambda d: _set(d, "layers/0/clusterability/per_superclass/0/n", 1000)),
    ("nan-literal", lambda d: json.dumps(d).replace(str(d["summary"]["committed_ami"]), "NaN", 1)),
    ("infinity-literal", lambda d: json.dumps(d).replace(str(d["summary"]["best_ami"]), "Infinity", 1)),
    ("minus-infinity", lambda d: json.dumps(d).replace(str(d["summary"]["last_ami"]), "-Infinity", 1)),
    ("truncated-json", lambda d: json.dumps(d)[:100]),
    ("not-json", lambda d: "<html>"),
    ("future-schema", lambda d: _set(d, "schema_version", "9.9")),
    ("no-summary", lambda d: _drop(d, "summary")),
    ("ami-above-one", lambda d: _set(d, "layers/0/clusterability/ami", 1.5)),
    ("other-spec", lambda d: _set(d, "encoder/spec", "builtin:digits_mlp")),
    ("task-renamed", lambda d: _set(d, "task/name", "no-such-task")),
]
CASES += [Case(f"result-{name}", _edit_result(edit)) for name, edit in RESULT_EDITS]


def _edit_model(edit: Callable[[str], str]) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        folder = _submission(box)
        path = folder / "model.yaml"
        path.write_text(edit(path.read_text()))
        return ["validate", str(box / "subs")]

    return setup


TRAVERSAL_WEIGHTS = "  weights: {file: ../../../../etc/passwd, sha256: '" + "0" * 64 + "'}"


def _source(source: str, sha256: str = "0" * 64) -> Callable[[str], str]:
    """model.yaml naming uncommitted weights by ``source`` (a YAML flow mapping)."""
    return lambda t: t.replace("  weights: null", f"  weights: {{sha256: '{sha256}', source: {source}}}")


MODEL_EDITS = [
    ("alias-bomb", lambda t: ALIAS_BOMB),
    ("python-tag", lambda t: "name: !!python/object/apply:builtins.open ['PWNED', 'w']\n"),
    ("weights-traversal", lambda t: t.replace("  weights: null", TRAVERSAL_WEIGHTS)),
    ("source-traversal", _source("{kind: shared, path: ../../../../etc/passwd}")),
    ("source-absolute", _source("{kind: shared, path: /etc/passwd}")),
    ("source-unknown-kind", _source("{kind: ftp, path: w.safetensors}")),
    ("source-not-a-mapping", _source("[shared, w.safetensors]")),
    ("source-path-not-a-string", _source("{kind: shared, path: [a, b]}")),
    ("source-hub-revision", _source("{kind: hub, repo: a/b, revision: ../../x, path: w.bin}")),
    ("source-converted-shell", _source("{kind: package, name: p, version: '1', path: w, converted_by: 'x.py; rm'}")),
    ("source-bad-sha256", _source("{kind: shared, path: w.safetensors}", sha256="xyz")),
    ("source-and-file", lambda t: t.replace("  weights: null", TRAVERSAL_WEIGHTS[:-1] + ", source: {kind: x}}")),
    ("preprocess-unknown-field", lambda t: t.replace("  weights: null", "  weights: null\n  preprocess: {gamma: 2}")),
    ("name-mismatch", lambda t: t.replace("name: digits-cnn-coarse", "name: other")),
    ("not-a-mapping", lambda t: "- a\n- b\n"),
]
CASES += [Case(f"model-{name}", _edit_model(edit)) for name, edit in MODEL_EDITS]


def _leaderboard_from_edited(box: Path) -> list[str]:
    _edit_result(_bump("summary/committed_ami", 0.2))(box)
    return ["leaderboard", "build", "--submissions", str(box / "subs"), "--out", str(box / "lb")]


def _leaderboard_nan(box: Path) -> list[str]:
    _edit_result(lambda d: json.dumps(d).replace(str(d["summary"]["committed_ami"]), "NaN", 1))(box)
    return ["leaderboard", "build", "--submissions", str(box / "subs"), "--out", str(box / "lb")]


def _verify_after(box: Path, setup: Callable[[Path], list[str]]) -> list[str]:
    setup(box)
    return ["verify", str(box / "subs" / SUBMISSION.name)]


def _unknown_task(box: Path) -> list[str]:
    folder = _submission(box)
    path = folder / "results" / "digits-5.json"
    doc = json.loads(path.read_text())
    doc["task"]["name"] = "no-such-task"
    (folder / "results" / "no-such-task.json").write_text(json.dumps(doc))
    path.unlink()
    return ["validate", str(box / "subs")]


def _result_renamed(box: Path) -> list[str]:
    folder = _submission(box)
    (folder / "results" / "digits-5.json").rename(folder / "results" / "cifar10-5.json")
    return ["validate", str(box / "subs")]


CASES += [
    Case("leaderboard-hand-edit", _leaderboard_from_edited),
    Case("leaderboard-nan", _leaderboard_nan),
    Case("result-file-renamed", _result_renamed),
    Case("result-unknown-task", _unknown_task),
    Case("verify-hand-edit", lambda b: _verify_after(b, _edit_result(_bump("summary/committed_ami", 0.2)))),
]

SUBMIT_NAMES = ["../../escaped", "/tmp/escaped", "Upper", ".hidden", "a/b", "..", "x" * 200, "a..b"]


def _submit(name: str) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        return [
            "submit",
            "--name",
            name,
            "--model",
            "builtin:digits_mlp",
            "--task",
            "digits-5",
            "--submissions",
            str(box / "subs"),
            "--labels",
            "none",
            "--training-data",
            "none",
            "--license",
            "MIT",
            "--citation",
            "x",
            "-q",
        ]

    return setup


CASES += [Case(f"submit-name-{i}", _submit(name)) for i, name in enumerate(SUBMIT_NAMES)]


def _submit_task(task: str) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        args = _submit("ok")(box)
        args[args.index("--task") + 1] = task
        return args

    return setup


CASES += [Case(f"submit-task-{i}", _submit_task(t)) for i, t in enumerate(["../../x", "/etc/passwd", "digits-5/.."])]


# --------------------------------------------------------------------------- F. feature cache


def _plant(box: Path, record: object, name: str | None = None) -> Path:
    cache = box / "cache"
    key = name or "ab" + "1" * 62
    (cache / key[:2]).mkdir(parents=True, exist_ok=True)
    (cache / key[:2] / f"{key}.json").write_text(json.dumps(record))
    (box / "victim.txt").write_text("keep me")
    return cache


def _victim_intact(box: Path) -> None:
    assert (box / "victim.txt").read_text() == "keep me"


CACHE_RECORDS = [
    ("empty-record", {}),
    ("traversal-key", {"key": "../../victim", "shape": [1], "created": 0}),
    ("absolute-key", {"key": "/tmp/victim", "shape": [1], "created": 0}),
    ("key-not-a-string", {"key": 7, "shape": [1], "created": 0}),
    ("key-of-another-file", {"key": "cd" + "2" * 62, "shape": [1], "created": 0}),
    ("shape-garbage", {"key": "ab" + "1" * 62, "shape": "big", "created": 0}),
]


def _cache_case(name: str, record: object, *command: str) -> Case:
    """A planted record, then a cache command: it must succeed and leave the victim file alone."""

    def setup(box: Path) -> list[str]:
        cache = _plant(box, record)
        return [*command, "--cache-dir", str(cache)]

    return Case(f"cache-{command[1]}-{name}", setup, code=0, after=_victim_intact)


for _name, _record in CACHE_RECORDS:
    CASES.append(_cache_case(_name, _record, "cache", "ls"))
    CASES.append(_cache_case(_name, _record, "cache", "prune", "--all"))


def _cache_is_a_file(box: Path) -> list[str]:
    (box / "cachefile").write_text("not a folder")
    return [
        "evaluate",
        "--cache-dir",
        str(box / "cachefile" / "sub"),
        "-q",
        "--out",
        "out/r.json",
        "--metrics",
        "clusterability",
    ]


CASES.append(Case("cache-dir-under-a-file", _cache_is_a_file))


# --------------------------------------------------------------------------- G. training run folders


def _train(box: Path, prepare: Callable[[Path], None]) -> list[str]:
    run = box / "run"
    prepare(run)
    return ["train", "--task", "digits-5", "--arch", "digits_cnn", "--epochs", "1", "--out", str(run), "-q"]


def _mkfile(path: Path, data: bytes = b"precious") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _torch_file(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


TRAIN_CASES = [
    ("foreign-file", lambda r: _mkfile(r / "thesis.tex")),
    ("foreign-checkpoint", lambda r: _mkfile(r / "checkpoints" / "notes.txt")),
    ("out-is-a-file", lambda r: _mkfile(r)),
    ("planted-pickle", lambda r: _torch_file(r / "last.pt", {"config_hash": Payload()})),
    ("truncated-state", lambda r: _mkfile(r / "last.pt", b"PK\x03\x04 cut")),
    ("state-a-list", lambda r: _torch_file(r / "last.pt", [1, 2, 3])),
]
CASES += [
    Case(f"train-{name}", lambda b, p=prepare: _train(b, p), may_create=(".run.lock",)) for name, prepare in TRAIN_CASES
]


# --------------------------------------------------------------------------- H. output locations


def _existing_out(box: Path) -> list[str]:
    (box / "notes.json").write_text('{"mine": true}')
    return ["evaluate", "-q", "--out", str(box / "notes.json"), "--metrics", "clusterability"]


def _out_under_file(box: Path) -> list[str]:
    (box / "f.txt").write_text("x")
    return ["evaluate", "-q", "--out", str(box / "f.txt" / "r.json"), "--metrics", "clusterability"]


def _results_is_a_file(box: Path) -> list[str]:
    (box / "results").write_text("x")
    return ["evaluate", "-q", "--metrics", "clusterability"]


def _compare_out_file(box: Path) -> list[str]:
    (box / "cmp").write_text("x")
    return ["compare", "--model", "builtin:digits_mlp", "--out", str(box / "cmp"), "-q"]


def _breeds_exists(box: Path) -> list[str]:
    (box / "t.yaml").write_text("mine")
    hierarchy = box / "hier"
    hierarchy.mkdir()
    out = str(box / "t.yaml")
    return ["tasks", "build-breeds", "--hierarchy", str(hierarchy), "--preset", "living17", "--out", out]


def _agreement_out_file(box: Path) -> list[str]:
    (box / "agr").write_text("x")
    return ["agreement", str(box / "nope"), "--out", str(box / "agr")]


CASES += [
    Case("out-existing-unrelated-file", _existing_out),
    Case("out-is-a-folder", lambda b: (b / "d").mkdir() or ["evaluate", "-q", "--out", str(b / "d")]),
    Case("out-under-a-file", _out_under_file),
    Case("out-default-results-is-a-file", _results_is_a_file),
    Case("out-compare-is-a-file", _compare_out_file),
    Case("out-breeds-hierarchy-missing", _breeds_exists),
    Case("out-agreement-missing-runs", _agreement_out_file),
]


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_red_team(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    box = tmp_path / "box"
    box.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("SUBCLASSBENCH_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("SUBCLASSBENCH_TASKS", raising=False)
    monkeypatch.chdir(box)
    args = case.setup(box)
    before = snapshot(tmp_path)
    try:
        code, _out, err = run_main(args, box, capsys)
    finally:
        os.environ.pop("SUBCLASSBENCH_TASKS", None)  # a case may point task lookups at its sandbox
    assert code == case.code, (code, err[-2000:])
    assert "Traceback" not in err
    if case.code == 2:
        assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
        assert err.lstrip().startswith("error:") or "error:" in err
    after = snapshot(tmp_path)
    allowed_new = {str(Path("box") / p) for p in case.may_create}
    new_files = set(after) - set(before) - allowed_new
    new_files = {p for p in new_files if not p.startswith("user-cache")}  # the user's own feature cache
    if case.code == 2:
        assert new_files <= {p for p in new_files if p.endswith(".lock")}, sorted(new_files)
        changed = {p for p in before if p in after and before[p] != after[p]}
        assert changed == set(), sorted(changed)
    assert not (box / PWNED).exists() and not (tmp_path / PWNED).exists()
    assert not list(outside.iterdir()) and not (tmp_path / "escaped").exists()
    if case.after is not None:
        case.after(box)


def test_the_red_team_is_large_enough():
    assert len(CASES) + len(MORE) >= 150


def test_an_edited_cache_record_is_not_copied_into_a_result(tmp_path, monkeypatch, capsys):
    """A record whose pooling was edited no longer counts: the features are recomputed and the result is honest."""
    cache = tmp_path / "cache"
    args = ["evaluate", "-q", "--cache-dir", str(cache), "--metrics", "clusterability", "--out", "r.json"]
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(args, tmp_path, capsys)
    assert code == 0, err
    for record_path in cache.glob("??/*.json"):
        record = json.loads(record_path.read_text())
        record["pooling"] = "<script>"
        record_path.write_text(json.dumps(record))
    assert run_main([*args[:-1], "r2.json"], tmp_path, capsys)[0] == 0
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("r.json", "r2.json"))
    assert [layer["pooling"] for layer in second["layers"]] == [layer["pooling"] for layer in first["layers"]]
    assert second["run"]["feature_cache"]["hits"] == 0


def test_a_killed_submit_leaves_nothing_git_or_validate_trips_over(tmp_path):
    """A staging folder left by a killed submit is hidden, ignored by git and skipped by validate."""
    subs = tmp_path / "subs"
    shutil.copytree(SUBMISSION, subs / SUBMISSION.name)
    (subs / ".staging-abc123").mkdir()
    (subs / ".staging-abc123" / "weights.safetensors").write_bytes(b"half")
    from subclassbench.leaderboard.submissions import validate_tree

    reports = validate_tree(subs)
    assert [e for r in reports for e in r.errors] == [] and [r.folder.name for r in reports] == [SUBMISSION.name]
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".staging-*" in ignored and ".*.lock" in ignored


def test_a_fresh_train_never_deletes_what_it_did_not_write(tmp_path):
    from subclassbench.errors import SubclassbenchError
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"someone else's weights")
    (run / "notes.md").write_text("mine")
    with pytest.raises(SubclassbenchError, match="not a subclassbench run"):
        train(load_task("digits-5"), "digits_cnn", "superclass", run, Recipe(epochs=0), progress=False)
    assert (run / "notes.md").read_text() == "mine" and (run / "model.safetensors").exists()


def test_result_documents_are_deep_copied_for_edits():
    # Guard for the suite itself: the edits above must not leak between cases.
    doc = json.loads((SUBMISSION / "results" / "digits-5.json").read_text())
    assert copy.deepcopy(doc) == doc


def test_a_dead_encoder_is_flagged_not_reported_as_retaining_everything(tmp_path):
    """All-zero weights: every layer is constant, and the OOD curve sits at chance instead of '100 % retained'."""
    from safetensors.torch import save_file

    from subclassbench.encoders.base import load_encoder
    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.evaluation.request import EvaluationRequest

    model = load_encoder("builtin:digits_mlp", num_classes=2).model  # digits-id5 has 2 superclasses
    weights = tmp_path / "dead.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in model.state_dict().items()}, str(weights))
    result = evaluate(
        EvaluationRequest(
            model="builtin:digits_mlp", weights=str(weights), task="digits-id5", progress=False, cache="off"
        )
    )
    assert all("constant" in layer["flags"] for layer in result.layers)
    transfer = result.summary["transfer"]
    assert transfer["flat_ood_curve"] is True and transfer["ood_sets"][0]["flat"] is True
    assert transfer["tunnel"] is None  # a flat curve has no tunnel to report


# --------------------------------------------------------------------------- found in review: more hostile files


def _validate_edited_text(
    edit: Callable[[str], str], file: str = "results/digits-5.json"
) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        path = _submission(box) / file
        path.write_text(edit(path.read_text()))
        return ["validate", str(box / "subs")]

    return setup


def _fake_basis(doc: dict) -> None:
    # digits-5 has no OOD set: a % retained there would be an OOD claim its data cannot support.
    doc["summary"]["transfer"]["ood_retained"] = doc["summary"]["ood_retained"] = 999.0


def _no_kind_blocks(doc: dict) -> None:
    for kind in ("subpop_shift", "subpop_refit"):
        doc["summary"]["transfer"]["subpopulation_shift"].pop(kind)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


MORE = [
    Case("result-fake-ood-basis", _edit_result(_fake_basis)),
    Case("result-no-kind-blocks", _edit_result(_no_kind_blocks)),
    Case(
        "result-overflowing-number",
        _validate_edited_text(lambda t: t.replace('"effective_rank": ', '"effective_rank": 1e999, "x": ', 1)),
    ),
    Case(
        "result-overflowing-n", _edit_result(lambda d: _set(d, "layers/0/clusterability/per_superclass/0/n", 10**400))
    ),
    Case("result-deep-nesting", _validate_edited_text(lambda t: _deep(100_000))),
    Case("model-impossible-date", _validate_edited_text(lambda t: t + "extra: 2001-02-30\n", "model.yaml")),
    Case("model-huge-int", _validate_edited_text(lambda t: t + "extra: " + "9" * 5000 + "\n", "model.yaml")),
    Case("model-deep-nesting", _validate_edited_text(lambda t: t + "extra: " + _deep(20_000) + "\n", "model.yaml")),
]


def _board_case(name: str, file: str, content: bytes, code: int = 2) -> Case:
    def setup(box: Path) -> list[str]:
        shutil.copytree(REPO / "leaderboard", box / "lb")
        (box / "lb" / file).write_bytes(content)
        subs = str(REPO / "submissions")  # read only: --check writes nothing
        return ["leaderboard", "build", "--check", "--submissions", subs, "--out", str(box / "lb")]

    return Case(f"leaderboard-{name}", setup, code=code)


MORE += [
    _board_case("json-merge-conflict", "leaderboard.json", b"{\n<<<<<<< HEAD\n"),
    _board_case("json-a-list", "leaderboard.json", b"[]"),
    _board_case("json-rows-without-keys", "leaderboard.json", b'{"tasks": {"digits-5": [{}]}}'),
    _board_case("changelog-not-utf8", "CHANGELOG.md", b"\xff\xfe\x00bad"),
]
for _name, _record in [("record-a-list", []), ("record-null", None), ("record-huge-shape", {"shape": [10**400]})]:
    MORE.append(
        Case(
            f"cache-evaluate-{_name}",
            lambda b, r=_record: [
                *(_plant(b, r) and []),
                "evaluate",
                "-q",
                "--cache-dir",
                str(b / "cache"),
                "--metrics",
                "clusterability",
                "--out",
                "r.json",
            ],
            code=0,
            may_create=("r.json",),
            after=_victim_intact,
        )
    )
for _name, _record in [
    ("rows-short", {"key": "ab" + "1" * 62, "shape": [1], "fields": {"rows": [1]}}),
    ("fields-a-list", {"key": "ab" + "1" * 62, "shape": [1], "fields": []}),
    ("encoder-a-string", {"key": "ab" + "1" * 62, "shape": [1], "fields": {"encoder": "x"}}),
]:
    MORE.append(_cache_case(_name, _record, "cache", "ls"))


def _card_switches(switches: object) -> Callable[[Path], Path]:
    return lambda b: _card(b, arch_kwargs=switches)


MORE += [
    _weights_case("card-switches-a-list", _card_switches([1])),
    _weights_case("card-switches-num-classes", _card_switches({"num_classes": "x"})),
    _weights_case("card-switches-unknown-norm", _card_switches({"norm": "gn"})),
]


def _agreement_garbage(box: Path) -> list[str]:
    run = box / "run"
    run.mkdir()
    (run / "correctness.npz").write_bytes(b"PK\x03\x04garbage")
    (run / "card.json").write_text("{}")
    return ["agreement", str(run), "--out", str(box / "agr")]


def _agreement_no_packed(box: Path) -> list[str]:
    run = box / "run"
    run.mkdir()
    np.savez(run / "correctness.npz", test_ids=np.array(["a"]))
    (run / "card.json").write_text("[]")
    return ["agreement", str(run), "--out", str(box / "agr")]


def _hf_ints(box: Path) -> Path:
    import datasets

    _, labels = make_images()
    root = box / "hf"
    datasets.Dataset.from_dict({"img": list(range(len(labels))), "label": labels.tolist()}).save_to_disk(str(root))
    return root


def _synthetic(key: str, value: object) -> Case:
    def setup(box: Path) -> list[str]:
        raw = yaml.safe_load((builtin_tasks_dir() / "synthetic-hier.yaml").read_text())
        raw["data"]["params"][key] = value
        write_yaml(box / "synthetic-hier.yaml", raw)
        return ["tasks", "show", str(box / "synthetic-hier.yaml")]

    return Case(f"synthetic-{key}-{value!r}"[:60], setup)


def _matrix(entry: str) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        (box / "models.yaml").write_text(entry)
        (box / "tasks.yaml").write_text("- digits-5\n")
        return ["run", "--models", str(box / "models.yaml"), "--tasks", str(box / "tasks.yaml"), "--out", "res"]

    return setup


def _resume_without_model(box: Path) -> list[str]:
    run = box / "run"
    args = ["train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "2", "--out", str(run), "-q"]
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    train(load_task("digits-5"), "digits_mlp", "superclass", run, Recipe(epochs=2), progress=False, stop_after_epochs=1)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["model"]
    torch.save(state, run / "last.pt")
    return args


def _card_dir_then_fresh(box: Path) -> list[str]:
    (box / "run" / "card.json").mkdir(parents=True)
    return [
        "train",
        "--task",
        "digits-5",
        "--arch",
        "digits_cnn",
        "--epochs",
        "1",
        "--out",
        str(box / "run"),
        "--no-resume",
        "-q",
    ]


def _custom_task_submit(box: Path) -> list[str]:
    write_yaml(box / "custom.yaml", _set(digits_raw(), "name", "custom"))
    args = _submit("ok")(box)
    args[args.index("--task") + 1] = "custom.yaml"
    return args


MORE += [
    Case("agreement-garbage-npz", _agreement_garbage),
    Case("agreement-npz-without-log", _agreement_no_packed),
    npz_case("hf-image-column-of-ints", _hf_ints),
    _synthetic("seed", "abc"),
    _synthetic("seed", 2**40),
    _synthetic("dim", -5),
    _synthetic("dim", 10**11),
    _synthetic("noise", "loud"),
    Case("run-model-not-a-string", _matrix("- model: 5\n")),
    Case("run-metrics-not-a-list", _matrix("- model: builtin:digits_mlp\n  metrics: 7\n")),
    Case("run-weights-not-a-string", _matrix("- model: builtin:digits_mlp\n  weights: 12\n")),
    Case("usage-device-meta", lambda b: ["evaluate", "--device", "meta", "-q"]),
    Case(
        "usage-compare-negative-samples", lambda b: ["compare", "--model", "builtin:digits_mlp", "--max-samples", "-5"]
    ),
    Case("out-name-too-long", lambda b: ["evaluate", "-q", "--out", str(b / ("r" * 300 + ".json"))]),
    Case("train-resume-state-without-model", _resume_without_model, may_create=(".run.lock",)),
    Case("train-card-is-a-folder", _card_dir_then_fresh, may_create=(".run.lock",)),
    Case("submit-local-task-file", _custom_task_submit),
]


@pytest.mark.parametrize("case", MORE, ids=[c.id for c in MORE])
def test_red_team_found_in_review(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch):
    test_red_team(case, tmp_path, capsys, monkeypatch)


# --------------------------------------------------------------------------- found by a second probe


def _toy_hierarchy(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """The toy BREEDS hierarchy of test_breeds, damaged, then built into a task."""

    def setup(box: Path) -> list[str]:
        from tests.tasks.test_breeds import write_hierarchy

        folder = write_hierarchy(box / "hier")
        damage(folder)
        build = ["tasks", "build-breeds", "--hierarchy", str(folder), "--level", "2", "--subclasses", "2"]
        return [*build, "--root", "root", "--name", "toy", "--out", "-"]

    return setup


def _add_edge(edge: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        with (folder / "class_hierarchy.txt").open("a") as handle:
            handle.write(edge + "\n")

    return damage


def _deep_class_info(folder: Path) -> None:
    (folder / "dataset_class_info.json").write_text("[" * 100_000 + "]" * 100_000)


def _linked_shard(box: Path) -> list[str]:
    """A shard folder of the cache is a link to someone else's folder: prune must not follow it."""
    victim = box / "victim" / "ab"
    victim.mkdir(parents=True)
    key = "ab" + "1" * 62
    (victim / f"{key}.npy").write_bytes(b"theirs")
    (victim / f"{key}.json").write_text(json.dumps({"key": key, "shape": [1], "created": 0}))
    (box / "cache").mkdir()
    (box / "cache" / "ab").symlink_to(victim)
    return ["cache", "prune", "--all", "--cache-dir", str(box / "cache")]


def _victim_shard_intact(box: Path) -> None:
    assert len(list((box / "victim" / "ab").iterdir())) == 2


def _zero_epoch_run(box: Path) -> list[str]:
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    train(load_task("digits-5"), "digits_mlp", "superclass", box / "run", Recipe(epochs=0), progress=False)
    return ["agreement", str(box / "run"), "--out", str(box / "agr")]


def _fifo_record(box: Path) -> list[str]:
    (box / "cache" / "ab").mkdir(parents=True)
    os.mkfifo(box / "cache" / "ab" / f"{'ab' + '1' * 62}.json")
    return ["cache", "ls", "--cache-dir", str(box / "cache")]


LONG = "a" * 300
MORE2 = [
    Case("breeds-cycle", _toy_hierarchy(_add_edge("g1 a"))),
    Case("breeds-self-loop", _toy_hierarchy(_add_edge("a a"))),
    Case("breeds-deep-json", _toy_hierarchy(_deep_class_info)),
    Case("cache-linked-shard", _linked_shard, code=0, after=_victim_shard_intact),
    Case("cache-fifo-record", _fifo_record, code=0),
    Case("cache-dir-empty", lambda b: ["cache", "prune", "--all", "--cache-dir", ""]),
    Case("evaluate-cache-dir-empty", lambda b: ["evaluate", "-q", "--cache-dir", ""]),
    Case("run-misspelt-weights", _matrix("- model: builtin:digits_mlp\n  wieghts: /x.safetensors\n")),
    Case("run-empty-metrics", _matrix("- model: builtin:digits_mlp\n  metrics: []\n")),
    Case("long-task-name", lambda b: ["evaluate", "-q", "--task", LONG]),
    Case(
        "long-weights-path", lambda b: ["evaluate", "-q", "--model", "builtin:digits_mlp", "--weights", str(b / LONG)]
    ),
    Case("long-cache-dir", lambda b: ["cache", "ls", "--cache-dir", str(b / LONG)]),
    Case("long-train-out", lambda b: ["train", "--task", "digits-5", "--arch", "digits_mlp", "--out", str(b / LONG)]),
    Case("long-agreement-run", lambda b: ["agreement", str(b / LONG)]),
    Case("agreement-zero-epochs", _zero_epoch_run),
    Case("shard-count-huge", lambda b: ["extract", "--shard", "1/100000000000000", "-q"]),
    Case("shards-negative", lambda b: ["score", "--shards", "-1", "-q"]),
    Case("compare-k-negative", lambda b: ["compare", "--model", "builtin:digits_mlp", "--k", "-3", "-q"]),
    Case("compare-k-too-large", lambda b: ["compare", "--model", "builtin:digits_mlp", "--k", "100000", "-q"]),
    Case("compare-seed-negative", lambda b: ["compare", "--model", "builtin:digits_mlp", "--seed", "-1", "-q"]),
]


@pytest.mark.parametrize("case", MORE2, ids=[c.id for c in MORE2])
def test_red_team_second_probe(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch):
    test_red_team(case, tmp_path, capsys, monkeypatch)


def test_one_unnamed_hf_split_is_never_also_the_training_data(tmp_path):
    """A saved Dataset without named splits serves the evaluated split only: transfer is skipped with a note."""
    import datasets

    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.evaluation.request import EvaluationRequest

    images, labels = make_images(n_per_class=6)
    root = tmp_path / "hf"
    from PIL import Image

    pictures = [Image.fromarray(image) for image in images]
    datasets.Dataset.from_dict({"img": pictures, "label": labels.tolist()}).save_to_disk(str(root))
    task = tiny_task(tmp_path, transfer=True)
    result = evaluate(
        EvaluationRequest(model="builtin:digits_mlp", task=str(task), data=str(root), progress=False, cache="off")
    )
    assert "transfer" not in result.metrics and any("transfer skipped" in n for n in result.notes)


# --------------------------------------------------------------------------- issue 34: hostile input, round two
# Classes 2 (reads without bounds), 6 (user code: plug-ins), 7 (writes that race or overwrite) and 8 (sizes and
# numbers without limits), through the CLI. Classes 1, 3, 4, 5 and 6 (the Python API) have their own suites:
# tests/leaderboard (board escaping, replayed evidence), tests/encoders/test_fingerprint.py, tests/tasks
# (decoding) and tests/features/test_outputs.py (user code, with a hypothesis fuzzer).

TRAIN = ["train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "1", "--out", "run", "-q"]
RUN = ["run", "--models", "m.yaml", "--tasks", "t.yaml", "-q"]
NUMBERS = [
    ("train-seed-beyond-64-bits", [*TRAIN, "--seed", str(2**64)]),
    ("train-seed-negative", [*TRAIN, "--seed", "-1"]),
    ("train-lr-nan", [*TRAIN, "--lr", "nan"]),
    ("train-lr-inf", [*TRAIN, "--lr", "inf"]),
    ("train-lr-zero", [*TRAIN, "--lr", "0"]),
    ("train-momentum-one", [*TRAIN, "--momentum", "1"]),
    ("train-momentum-nan", [*TRAIN, "--momentum", "nan"]),
    ("train-weight-decay-nan", [*TRAIN, "--weight-decay", "nan"]),
    ("train-weight-decay-negative", [*TRAIN, "--weight-decay", "-1"]),
    ("train-batch-size-zero", [*TRAIN, "--batch-size", "0"]),
    ("run-gpus-nan", [*RUN, "--gpus-per-task", "nan"]),
    ("run-gpus-negative", [*RUN, "--gpus-per-task", "-1"]),
    ("run-gpus-inf", [*RUN, "--gpus-per-task", "inf"]),
    ("run-workers-negative", [*RUN, "--workers", "-3"]),
    ("run-shards-zero", [*RUN, "--shards", "0"]),
    ("run-shards-huge", [*RUN, "--shards", "100000000"]),
    ("train-runs-gpus-nan", ["train-runs", "--runs", "r.yaml", "--out", "o", "--gpus-per-task", "nan"]),
    ("reproduce-gpus-nan", ["reproduce", "yang2023", "--gpus-per-task", "nan", "-q"]),
    ("reproduce-score-workers-negative", ["reproduce", "yang2023", "--score-workers", "-1", "-q"]),
    ("compare-seed-beyond-64-bits", ["compare", "--model", "builtin:digits_mlp", "--seed", str(2**64), "-q"]),
    ("evaluate-limit-zero", ["evaluate", "-q", "--limit", "0"]),
    ("evaluate-limit-nan", ["evaluate", "-q", "--limit", "nan"]),
    ("evaluate-bootstrap-nan", ["evaluate", "-q", "--bootstrap", "nan"]),
    ("evaluate-workers-negative", ["evaluate", "-q", "--workers", "-3"]),
    ("evaluate-workers-huge", ["evaluate", "-q", "--workers", "1000"]),
    ("evaluate-score-workers-negative", ["evaluate", "-q", "--score-workers", "-2"]),
]
ROUND_TWO = [Case(f"number-{name}", lambda _b, a=args: list(a)) for name, args in NUMBERS]


def _runs_file(text: str) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        (box / "r.yaml").write_text(text)
        return ["train-runs", "--runs", str(box / "r.yaml"), "--out", str(box / "o"), "-q"]

    return setup


SEEDS_200 = "[" + ", ".join(str(i) for i in range(200)) + "]"
ROUND_TWO += [
    Case("runs-expand-beyond-limit", _runs_file(f"- task: digits-5\n  arch: digits_mlp\n  seed: {SEEDS_200}\n"
                                                f"  labels: [superclass, fine, random]\n  norm: [bn, gn, none]\n"
                                                f"- task: digits-5\n  arch: digits_mlp\n  seed: {SEEDS_200}\n"
                                                f"  labels: [superclass, fine, random]\n  norm: [bn, gn, none, ln]\n"
                                                + "".join(f"- task: digits-5\n  arch: digits_mlp\n  seed: {SEEDS_200}\n"
                                                          f"  labels: [superclass, fine, random]\n  norm: [x{i}]\n"
                                                          for i in range(10)))),
    Case("runs-seed-beyond-64-bits", _runs_file(f"- task: digits-5\n  arch: digits_mlp\n  seed: {2**70}\n")),
    Case("runs-seed-negative", _runs_file("- task: digits-5\n  arch: digits_mlp\n  seed: [1, -4]\n")),
    Case("runs-lr-nan", _runs_file("- task: digits-5\n  arch: digits_mlp\n  lr: .nan\n  epochs: 1\n")),
    Case("runs-momentum-above-one", _runs_file("- task: digits-5\n  arch: digits_mlp\n  momentum: 1.5\n  epochs: 1\n")),
]  # fmt: skip


def _wide_superclass(raw: dict) -> dict:
    subclasses = [{"id": 1000 + i, "name": f"s{i}"} for i in range(1001)]
    return _set(raw, "hierarchy/superclasses/0/subclasses", subclasses)


def _many_subclasses(raw: dict) -> dict:
    raw["hierarchy"]["superclasses"] = [
        {"id": s, "name": f"sup{s}", "subclasses": [{"id": s * 1000 + i, "name": f"c{s}-{i}"} for i in range(1000)]}
        for s in range(101)
    ]
    return raw


ROUND_TWO += [task_case("superclass-with-1001-subclasses", _wide_superclass)]
ROUND_TWO += [task_case("hierarchy-of-101000-subclasses", _many_subclasses, ".json")]


# Class 2: special files and links in data, cache and submission trees.
def _folder_with(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        task = tiny_task(box)
        root = image_folder(box)
        damage(root / "test")
        return ["evaluate", "--task", str(task), "--data", str(root), "--metrics", "clusterability", "-q",
                "--out", "out/r.json", "--no-cache"]  # fmt: skip

    return setup


def _link_image_out(test: Path) -> None:
    victim = sorted((test / "cat").iterdir())[0]
    secret = test.parents[2] / "elsewhere" / "secret.png"
    secret.parent.mkdir(exist_ok=True)
    shutil.copy(victim, secret)
    victim.unlink()
    victim.symlink_to(secret)


def _link_class_out(test: Path) -> None:
    elsewhere = test.parents[2] / "elsewhere" / "dog"
    elsewhere.parent.mkdir()
    shutil.move(str(test / "dog"), elsewhere)
    (test / "dog").symlink_to(elsewhere)


def _fifo_image(test: Path) -> None:
    os.mkfifo(test / "cat" / "9999.png")


def _folder_named_image(test: Path) -> None:
    (test / "cat" / "9999.png").mkdir()


def _fifo_npz(box: Path) -> list[str]:
    task = tiny_task(box)
    (box / "d").mkdir()
    os.mkfifo(box / "d" / "tiny_test.npz")
    return ["evaluate", "--task", str(task), "--data", str(box / "d"), "--metrics", "clusterability", "-q",
            "--out", "out/r.json", "--no-cache"]  # fmt: skip


def _cache_entry_link(box: Path) -> list[str]:
    key = "ab" + "2" * 62
    (box / "cache" / "ab").mkdir(parents=True)
    target = box.parent / "outside-record.json"
    target.write_text(json.dumps({"key": key, "shape": [1], "created": 0}))
    (box / "cache" / "ab" / f"{key}.json").symlink_to(target)
    return ["cache", "ls", "--cache-dir", str(box / "cache")]


def _cache_record_huge(box: Path) -> list[str]:
    key = "ab" + "3" * 62
    (box / "cache" / "ab").mkdir(parents=True)
    (box / "cache" / "ab" / f"{key}.json").write_text(" " * (3 << 20) + "{}")
    return ["cache", "ls", "--cache-dir", str(box / "cache")]


def _submission_with(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        folder = box / "submissions" / "x"
        (folder / "results").mkdir(parents=True)
        (folder / "model.yaml").write_text("name: x\n")
        damage(folder)
        return ["validate", str(box / "submissions")]

    return setup


ROUND_TWO += [
    Case("data-image-linked-out-of-the-tree", _folder_with(_link_image_out)),
    Case("data-class-folder-linked-out-of-the-tree", _folder_with(_link_class_out)),
    Case("data-fifo-named-like-an-image", _folder_with(_fifo_image)),
    Case("data-folder-named-like-an-image", _folder_with(_folder_named_image)),
    Case("data-fifo-named-like-a-split-file", _fifo_npz),
    Case("cache-record-linked-out", _cache_entry_link, code=0),
    Case("cache-record-huge", _cache_record_huge, code=0),
    Case("submission-result-linked-out",
         _submission_with(lambda f: (f / "results" / "t.json").symlink_to("/etc/passwd"))),
    Case("submission-fifo-result", _submission_with(lambda f: os.mkfifo(f / "results" / "t.json"))),
    Case("submission-fifo-weights", _submission_with(lambda f: os.mkfifo(f / "weights.safetensors"))),
    Case("submission-model-linked-out", _submission_with(
        lambda f: ((f / "model.yaml").unlink(), (f / "model.yaml").symlink_to("/etc/hostname")))),
    Case("submission-folder-linked-out", lambda b: (
        (b.parent / "elsewhere" / "x").mkdir(parents=True), (b / "submissions").mkdir(),
        (b / "submissions" / "x").symlink_to(b.parent / "elsewhere" / "x"), ["validate", str(b / "submissions")])[-1]),
]  # fmt: skip


# Class 7: a quick --limit try never replaces a full result; a submit that fails leaves nothing behind.
def _full_result_then_limited(force: bool) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        args = ["evaluate", "-q", "--metrics", "clusterability", "--bootstrap", "0", "--no-cache", "--out", "r.json"]
        assert main_quietly([*args], box) == 0
        return [*args, "--limit", "40", *(["--force"] if force else [])]

    return setup


def main_quietly(args: list[str], box: Path) -> int:
    old = Path.cwd()
    os.chdir(box)
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(old)
    return 0


def _still_full(box: Path) -> None:
    doc = json.loads((box / "r.json").read_text())
    assert all(s.get("limit") is None for s in doc["task"]["splits"].values())


def _now_limited(box: Path) -> None:
    doc = json.loads((box / "r.json").read_text())
    assert all((s.get("limit") or {}).get("n") == 40 for s in doc["task"]["splits"].values())


SUBMIT = ["submit", "--name", "x", "--model", "builtin:digits_cnn.digits5_coarse", "--task", "digits-5",
          "--training-data", "digits", "--license", "MIT", "--citation", "c", "--description", "d", "-q"]  # fmt: skip


def _nothing_submitted(box: Path) -> None:
    assert not (box / "submissions" / "x").exists()


ROUND_TWO += [
    Case("out-limited-over-full", _full_result_then_limited(False), after=_still_full),
    Case("out-limited-over-full-forced", _full_result_then_limited(True), code=0, after=_now_limited,
         may_create=("r.samples.npz", ".r.json.lock")),
    Case("submit-superclass-without-label-task", lambda b: [*SUBMIT, "--labels", "superclass"],
         after=_nothing_submitted),
    Case("submit-unknown-label-task", lambda b: [*SUBMIT, "--labels", "superclass", "--label-task", "nope"],
         after=_nothing_submitted),
]  # fmt: skip


# Class 5: images decoded truthfully or refused, through evaluate on an image folder with one image replaced.
def _png_bytes(image: object, fmt: str = "PNG", **options: object) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)  # type: ignore[attr-defined]
    return buffer.getvalue()


def _bomb_png() -> bytes:
    """A valid 1x1 PNG whose header then claims 20,000 x 20,000 pixels (CRC fixed): a decompression bomb."""
    import struct
    import zlib

    from PIL import Image

    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", 20_000, 20_000)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    return bytes(data)


def _image_kind(kind: str) -> tuple[str, bytes]:
    from PIL import Image

    rng = np.random.RandomState(0)
    rgb = Image.fromarray(rng.randint(0, 256, size=(16, 16, 3)).astype(np.uint8))
    ramp = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 250).astype(np.uint16)
    every_index = np.arange(256, dtype=np.uint8).reshape(16, 16)  # a palette image using its index 5
    alpha = np.dstack([np.asarray(rgb), np.eye(16, dtype=np.uint8) * 255])
    return {
        "16-bit-grey": ("png", _png_bytes(Image.fromarray(ramp))),
        "palette": ("png", _png_bytes(rgb.quantize(colors=8))),
        "cmyk-jpeg": ("jpg", _png_bytes(rgb.convert("CMYK"), "JPEG")),
        "bilevel": ("png", _png_bytes(rgb.convert("1"))),
        "opaque-alpha": ("png", _png_bytes(rgb.convert("RGBA"))),
        "greyscale": ("png", _png_bytes(rgb.convert("L"))),
        "jpeg-named-png": ("png", _png_bytes(rgb, "JPEG")),
        "transparent-alpha": ("png", _png_bytes(Image.fromarray(alpha))),
        "transparent-palette": ("png", _png_bytes(Image.fromarray(every_index).convert("P"), transparency=5)),
        "float-out-of-range": ("tif", _png_bytes(Image.fromarray(np.full((16, 16), 3.0, np.float32), "F"), "TIFF")),
        "int32-out-of-range": ("tif", _png_bytes(Image.fromarray(np.full((16, 16), 70_000, np.int32), "I"), "TIFF")),
        "truncated": ("png", _png_bytes(rgb)[:60]),
        "empty": ("png", b""),
        "text": ("png", b"not an image at all\n"),
        "bomb-header": ("png", _bomb_png()),
    }[kind]


def _one_image(kind: str) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        task = tiny_task(box)
        root = image_folder(box)
        victim = sorted((root / "test" / "cat").iterdir())[0]
        victim.unlink()
        suffix, data = _image_kind(kind)
        victim.with_suffix(f".{suffix}").write_bytes(data)
        return ["evaluate", "--task", str(task), "--data", str(root), "--metrics", "clusterability", "-q",
                "--bootstrap", "0", "--out", "out/r.json", "--no-cache"]  # fmt: skip

    return setup


WRITTEN = ("out/r.json", "out/r.samples.npz", "out/.r.json.lock")
ROUND_TWO += [
    Case(f"image-{kind}", _one_image(kind), code=0, may_create=WRITTEN)
    for kind in ["16-bit-grey", "palette", "cmyk-jpeg", "bilevel", "opaque-alpha", "greyscale", "jpeg-named-png"]
]
ROUND_TWO += [
    Case(f"image-{kind}", _one_image(kind))
    for kind in ["transparent-alpha", "transparent-palette", "float-out-of-range", "int32-out-of-range",
                 "truncated", "empty", "text", "bomb-header"]
]


# Class 1: free text in a result file that the tables and the board print.
_BASE: dict[str, object] = {}


def _base_result() -> dict:
    if not _BASE:
        import subclassbench

        _BASE["doc"] = subclassbench.evaluate("builtin:digits_mlp", metrics=["clusterability"], bootstrap=0).doc
    return copy.deepcopy(_BASE["doc"])  # type: ignore[arg-type]


def _hostile_result(edit: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(box: Path) -> list[str]:
        doc = _base_result()
        doc.pop("samples", None)
        text = edit(doc)
        (box / "r.json").write_text(text if isinstance(text, str) else json.dumps(doc))
        return ["results", str(box / "r.json")]

    return setup


HOSTILE_RESULTS = [
    ("layer-name-pipe", lambda d: _set(d, "layers/0/name", "conv|x")),
    ("layer-name-html", lambda d: _set(d, "layers/0/name", "<img src=x onerror=alert(1)>")),
    ("layer-name-link", lambda d: _set(d, "layers/0/name", "[click](https://evil.example)")),
    ("layer-name-newline", lambda d: _set(d, "layers/0/name", "conv\n| injected |")),
    ("layer-name-traversal", lambda d: _set(d, "layers/0/name", "../../etc")),
    ("committed-layer-unknown", lambda d: _set(d, "summary/committed_layer", "not.a.layer")),
    ("source-with-markup", lambda d: _set(d, "encoder/source", "builtin|<b>")),
    ("duplicate-key",
     lambda d: json.dumps(d).replace('{"schema_version"', '{"schema_version": "0", "schema_version"', 1)),
    ("nan-in-json", lambda d: json.dumps(d).replace('"depth": 0.0', '"depth": NaN', 1)),
    ("infinity-in-json", lambda d: json.dumps(d).replace('"depth": 0.0', '"depth": Infinity', 1)),
    ("a-list", lambda d: "[1, 2, 3]"),
    ("deeply-nested", lambda d: "[" * 100_000 + "]" * 100_000),
]  # fmt: skip
ROUND_TWO += [Case(f"result-{name}", _hostile_result(edit)) for name, edit in HOSTILE_RESULTS]


# Class 8: preprocessing overrides and constructor arguments from the command line.
EVAL = ["evaluate", "-q", "--metrics", "clusterability", "--bootstrap", "0", "--out", "out/r.json"]
OPTION_CASES = [
    ("preprocess-std-zero", ["--preprocess", "std=0"]),
    ("preprocess-std-nan", ["--preprocess", "std=nan"]),
    ("preprocess-mean-inf", ["--preprocess", "mean=inf"]),
    ("preprocess-size-zero", ["--preprocess", "input_size=0"]),
    ("preprocess-size-huge", ["--preprocess", "input_size=100000"]),
    ("preprocess-crop-nan", ["--preprocess", "crop_pct=nan"]),
    ("preprocess-crop-zero", ["--preprocess", "crop_pct=0"]),
    ("preprocess-crop-above-one", ["--preprocess", "crop_pct=2"]),
    ("preprocess-interpolation-unknown", ["--preprocess", "interpolation=magic"]),
    ("preprocess-unknown-field", ["--preprocess", "size=3"]),
    ("preprocess-no-equals", ["--preprocess", "std"]),
    ("preprocess-five-channels", ["--preprocess", "mean=0.1,0.2,0.3,0.4,0.5"]),
    ("model-arg-pretrained", ["--model", "timm:resnet18", "--random-init", "--model-arg", "pretrained=true"]),
    ("model-arg-checkpoint-path", ["--model", "timm:resnet18", "--random-init", "--model-arg",
                                   "checkpoint_path=/etc/passwd"]),
    ("model-arg-unknown", ["--model", "timm:resnet18", "--random-init", "--model-arg", "no_such_arg=1"]),
    ("model-arg-builtin-unknown", ["--model-arg", "bogus=1"]),
    ("model-arg-no-equals", ["--model-arg", "norm"]),
]  # fmt: skip
ROUND_TWO += [Case(f"option-{name}", lambda _b, a=args: [*EVAL, *a]) for name, args in OPTION_CASES]


ROUND_TWO += [
    Case("number-evaluate-bootstrap-huge", lambda b: ["evaluate", "-q", "--bootstrap", str(10**9)]),
    Case("number-evaluate-batch-size-negative", lambda b: ["evaluate", "-q", "--batch-size", "-5"]),
    Case("number-extract-shard-zero", lambda b: ["extract", "-q", "--shard", "0/2"]),
    Case("number-train-threads-negative", lambda b: [*TRAIN, "--threads", "-1"]),
    Case("number-train-checkpoint-every-negative", lambda b: [*TRAIN, "--checkpoint-every", "-2"]),
    Case("number-train-epochs-negative", lambda b: [*TRAIN, "--epochs", "-1"]),
    Case("number-submit-seed-negative", lambda b: [*SUBMIT, "--labels", "none", "--seed", "-1"]),
]


@pytest.mark.parametrize("case", ROUND_TWO, ids=[c.id for c in ROUND_TWO])
def test_red_team_round_two(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch):
    test_red_team(case, tmp_path, capsys, monkeypatch)


def test_round_two_is_large_enough():
    assert len(ROUND_TWO) >= 100
