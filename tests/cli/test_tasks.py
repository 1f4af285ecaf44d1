"""`subclassbench tasks` on the command line (subclassbench.cli.tasks): the listing and one resolved task."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from subclassbench.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_tasks_list_and_show():
    listing = run("tasks")
    assert listing.exit_code == 0
    for name in ("digits-5", "cifar10-5", "cifar10-5-semantic", "synthetic-hier"):
        assert name in listing.output
    shown = run("tasks", "show", "cifar10-5-semantic", "--json")
    assert shown.exit_code == 0
    data = json.loads(shown.output)
    assert data["name"] == "cifar10-5-semantic" and len(data["fingerprint"]) == 64
    assert data["superclasses"][4] == {
        "name": "ship/truck",
        "id": 4,
        "subclasses": [8, 9],
        "subclass_names": ["ship", "truck"],
        "source": [8],
        "target": [9],
    }
    assert data["data_hashed"] is False
    digits = json.loads(run("tasks", "show", "digits-5", "--json").output)
    assert digits["data_hashed"] is True and digits["fingerprint"] != digits["definition_fingerprint"]
    assert run("tasks", "show", "nope").exit_code == 2


def test_the_task_list_cuts_descriptions_at_a_word():
    from subclassbench.tasks.task import list_tasks, load_task

    out = CliRunner().invoke(app, ["tasks"])
    assert out.exit_code == 0
    for name in list_tasks():
        first = load_task(name).description.split(". ")[0]
        line = next(line for line in out.output.splitlines() if line.startswith(name + " "))
        shown = line.rstrip().split("  ")[-1].strip()
        assert shown == first or (shown.endswith(" …") and first.startswith(shown[:-2]) and
                                   first[len(shown) - 2] == " "), (shown, first)  # fmt: skip
