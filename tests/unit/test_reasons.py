"""Reasons are one documented enumeration, and docs/reasons.md is generated from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from buildwright.core.reasons import Reason, reasons_table

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator" / "buildwright"


def test_the_reasons_table_in_docs_is_generated_from_the_enumeration() -> None:
    written = (REPO / "docs" / "reasons.md").read_text()
    assert written == reasons_table(), "docs/reasons.md is stale: run `make generated`"


def test_every_reason_is_documented_and_spelled_once() -> None:
    values = [reason.value for reason in Reason]
    assert len(values) == len(set(values))
    for reason in Reason:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", reason.value), reason.value
        assert reason.doc.endswith(".") and len(reason.doc) > 15, reason
        assert reason.area


def test_no_module_spells_a_reason_as_a_bare_string() -> None:
    """A reason written as a literal elsewhere would drift from the documented one."""
    # Words other vocabularies share: Tekton's and Kubernetes' phases, the value of a
    # BuildRun's spec.state, the kubelet's waiting reason that becomes our reason.
    shared = {"Succeeded", "Failed", "Running", "Pending", "BuildRunCanceled",
              "CreateContainerConfigError"}  # fmt: skip
    values = {reason.value for reason in Reason} - shared
    found = []
    for path in OPERATOR.rglob("*.py"):
        if path.name == "reasons.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in values:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value}")
    assert not found, found
