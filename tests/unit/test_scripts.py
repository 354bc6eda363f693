"""Parameters pasted into shell scripts are found, and the author is told how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from buildwright.api.v1beta1 import Step
from buildwright.core import scripts
from buildwright.core.validation import parse_strategy

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"


def step(command: list[str], args: list[str] | None = None, name: str = "build") -> Step:
    return Step.model_validate({"name": name, "image": "i", "command": command, "args": args})


@pytest.mark.parametrize(("command", "args", "found"), [
    (["sh", "-c"], ["buildah bud -t $(params.tag) ."], ["tag"]),
    (["/bin/bash", "-ec", "echo $(params['a']) $(params.b)"], None, ["a", "b"]),
    (["/usr/bin/env"], ["sh", "-xc", "echo $(params.x)"], ["x"]),  # env runs sh: still a script
    (["sh", "-e", "-c", "echo $(params.x)"], None, ["x"]),
    # Safe forms: the value as its own argument after the script, or in a file argument.
    (["sh", "-c", 'echo "$1"', "--", "$(params.x)"], None, []),
    (["buildah", "bud", "-t", "$(params.tag)"], None, []),
    (["sh", "script.sh", "$(params.x)"], None, []),
])  # fmt: skip
def test_spliced_parameters(command: list[str], args: list[str] | None, found: list[str]) -> None:
    splices = scripts.spliced_parameters([step(command, args)])
    assert [s.parameter for s in splices] == found


def test_the_warning_says_how_to_pass_it_through_env() -> None:
    splices = scripts.spliced_parameters([step(["sh", "-c", "x $(params.my-tag)"])])
    message = scripts.warning(splices)
    assert message is not None
    assert "$(params.my-tag) in step build" in message
    assert 'env: [{name: MY_TAG, value: "$(params.my-tag)"}] and "$MY_TAG" in the script' in message
    assert scripts.warning([]) is None


@pytest.mark.parametrize("path", sorted(STRATEGIES.glob("**/*.yaml")), ids=lambda p: p.name)
def test_shipped_strategies_never_splice(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "Strategy" not in str(doc.get("kind")):
        return
    assert scripts.spliced_parameters(parse_strategy(doc).spec.steps) == []
