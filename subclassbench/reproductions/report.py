"""A reproduction's report: what a claim's analysis found, written as ``<claim>.md`` + ``<claim>.json`` + figures.

The markdown is for people (the paper's figure beside ours, the verdict and why, what this scale
shortened, the command for the full run); the JSON beside it holds every per-seed number the markdown
shows, for scripts. Neither holds a timestamp: the same runs give the same report, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subclassbench.core.files import atomic_write_many
from subclassbench.reproductions.plan import Claim, Plan
from subclassbench.reproductions.stats import NOT_REPRODUCED, seed_summary


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


NOT_APPLICABLE = "not applicable"


@dataclass
class ControlVerdict:
    """What a claim's rule says when a negative control stands in for the arms."""

    kind: str  # one of plan.CONTROLS
    stands_for: list[str]  # the arms it replaced
    verdict: str
    why: str
    numbers: dict[str, Any]

    @property
    def passes(self) -> bool:
        """Whether the control earned a verdict above "not reproduced": the rule is then broken."""
        return self.verdict not in (NOT_REPRODUCED, NOT_APPLICABLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stands_for": self.stands_for,
            "verdict": self.verdict,
            "why": self.why,
            "rule_broken": self.passes,
            "numbers": self.numbers,
        }


@dataclass
class Findings:
    """What a claim's analysis returns: the verdict and why, tables, figures, and the numbers behind them."""

    verdict: str
    why: str
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)  # name → PNG bytes
    numbers: dict[str, Any] = field(default_factory=dict)  # JSON-ready; every number the tables show
    notes: list[str] = field(default_factory=list)
    controls: list[ControlVerdict] = field(default_factory=list)  # set by the harness, not the analysis


def _cell(text: str) -> str:
    """A table cell: a "|" inside it (|ρ|) would end the cell, so it is escaped."""
    return str(text).replace("|", "\\|")


def _markdown_table(table: Table) -> list[str]:
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines.append("| " + " | ".join(map(_cell, table.headers)) + " |")
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table.rows]
    return [*lines, ""]


def _recipe_text(recipe: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(recipe.items())) or "defaults"


def _controls_section(controls: list[ControlVerdict]) -> list[str]:
    broken = [c.kind for c in controls if c.passes]
    lines = [
        "## Negative controls",
        "",
        "Each control stands in for the arms it names, seed for seed, and the claim's rule is applied to it "
        "unchanged. A network that learned nothing must not earn a verdict: "
        + (
            f"**the rule is broken** — {', '.join(broken)} pass{'es' if len(broken) == 1 else ''} it."
            if broken
            else "none does."
        ),
        "",
        "| control | stands in for | verdict it earns | why |",
        "|---|---|---|---|",
    ]
    for c in controls:
        mark = " ⚠" if c.passes else ""
        lines.append(f"| {c.kind} | {_cell('; '.join(c.stands_for))} | {c.verdict}{mark} | {_cell(c.why)} |")
    return [*lines, ""]


def render_markdown(
    claim: Claim, plan: Plan, findings: Findings, command: str, full_command: str, provenance: dict[str, Any]
) -> str:
    lines = [
        f"# {claim.paper}: {claim.title}",
        "",
        f"<!-- written by `{command}`; edit the claim in {claim.source}, not this file -->",
        "",
        f"**Verdict ({plan.scale} scale): {findings.verdict}.** {findings.why}",
        "",
        "## The claim",
        "",
        claim.statement,
        "",
        f"**The paper's figure.** {claim.paper_figure}",
        "",
        "## What ran",
        "",
        f"Scale `{plan.scale}`: {plan.shortened}",
        "",
        f"Seeds {', '.join(map(str, plan.seeds))}; every result is scored under protocol "
        f"v{provenance['protocol_version']} (fingerprint `{provenance['protocol_fingerprint'][:12]}`) with "
        f"{plan.bootstrap} bootstrap resamples over the test images for each seed's 95% interval. Across seeds: "
        "mean ± std [95% t-interval of the mean].",
        "",
        "| arm | trained on | labels | architecture | recipe (beside the base) | test acc on its labels | scored on |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in plan.conditions:
        arch = c.arch + (f" ({c.norm})" if c.norm else "")
        scored = c.scored_on if c.metrics else "training logs only"
        accs = provenance["test_acc"][c.name]
        accuracy = "— (untrained)" if None in accs else seed_summary(accs).text()
        lines.append(
            f"| {c.name} | {c.task} | {c.labels} | {arch} | {_recipe_text(dict(c.recipe))} | {accuracy} | {scored} |"
        )
    lines += [
        "",
        f"Base recipe: {_recipe_text(dict(plan.recipe))} (other fields: `subclassbench train`'s defaults).",
        "",
    ]
    lines += [f"Trained on {provenance['devices']}; {provenance['train_hours']:.2f} h of training in all.", ""]
    lines += ["## Numbers", ""]
    for table in findings.tables:
        lines += _markdown_table(table)
    if findings.controls:
        lines += _controls_section(findings.controls)
    if findings.figures:
        lines += ["## Figures", ""]
        for name in findings.figures:
            lines += [f"![{name}](figures/{claim.name}-{name}.png)", ""]
    if findings.notes:
        lines += ["## Reading it", ""]
        lines += [f"- {note}" for note in findings.notes]
        lines.append("")
    lines += [
        "## Run it",
        "",
        "This report:",
        "",
        f"```bash\n{command}\n```",
        "",
        "The paper-scale run (a GPU; `--executor ray --gpus-per-task 1` trains one run per GPU):",
        "",
        f"```bash\n{full_command}\n```",
        "",
        f"The numbers behind every table are in [`{claim.name}.json`]({claim.name}.json).",
        "",
    ]
    return "\n".join(lines)


def write_report(
    report_dir: Path,
    claim: Claim,
    plan: Plan,
    findings: Findings,
    command: str,
    full_command: str,
    provenance: dict[str, Any],
) -> list[Path]:
    """Write the markdown, the JSON and the figures all or nothing."""
    doc = {
        "claim": claim.name,
        "paper": claim.paper,
        "scale": plan.scale,
        "verdict": findings.verdict,
        "why": findings.why,
        "command": command,
        "provenance": provenance,
        "numbers": findings.numbers,
        "controls": {c.kind: c.to_dict() for c in findings.controls},
    }
    files = {
        report_dir / f"{claim.name}.md": render_markdown(
            claim, plan, findings, command, full_command, provenance
        ).encode(),
        report_dir / f"{claim.name}.json": (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode(),
    }
    for name, png in findings.figures.items():
        files[report_dir / "figures" / f"{claim.name}-{name}.png"] = png
    return atomic_write_many(files)
