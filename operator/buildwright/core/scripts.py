"""Strategy steps that splice parameters into shell scripts, and what to tell their authors.

A step such as `command: [sh, -c]`, `args: ["buildah bud -t $(params.tag) ."]` has the
parameter's value substituted into the script text before the shell reads it, so a value like
`x; rm -rf /` runs as shell code — Tekton and upstream Shipwright behave the same. The safe
form passes the value through the environment: `env: [{name: TAG, value: $(params.tag)}]`
and `"$TAG"` in the script. The operator cannot rewrite a user's strategy; it warns the author
(a Warning Event and a condition on the strategy). The strategies it ships never do this (a
test keeps it so).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from buildwright.api.v1beta1 import Step
from buildwright.core.substitute import referenced_parameters

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})
CONDITION_TYPE = "ParametersPassedSafely"
REASON = "ParameterInShellScript"
_SHORT_OPTIONS = re.compile(r"-[A-Za-z]+")


@dataclass(frozen=True)
class Splice:
    """Step `step` has `$(params.<parameter>)` inside the script it hands to a shell."""

    step: str
    parameter: str


def shell_scripts(argv: Sequence[str]) -> list[str]:
    """The scripts a command line hands to a shell with `-c` (or `-ec`, `-xc`, ...)."""
    scripts: list[str] = []
    shell_seen = False
    for index, element in enumerate(argv):
        if element.rsplit("/", 1)[-1] in SHELLS:
            shell_seen = True
            continue
        if not shell_seen:
            continue
        if _SHORT_OPTIONS.fullmatch(element) and "c" in element[1:]:
            if index + 1 < len(argv):
                scripts.append(argv[index + 1])
            shell_seen = False  # what follows the script is data ($0, $1, ...)
        elif not element.startswith("-"):
            shell_seen = False  # `sh script.sh`: a file, not a -c script
    return scripts


def spliced_parameters(steps: Sequence[Step]) -> list[Splice]:
    """Every parameter a step splices into a shell script, in step order."""
    found: list[Splice] = []
    for step in steps:
        argv = [*(step.command or ()), *(step.args or ())]
        for name in sorted(referenced_parameters(shell_scripts(argv))):
            found.append(Splice(step.name, name))
    return found


def _env_name(parameter: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", parameter.upper())


def warning(splices: Sequence[Splice]) -> str | None:
    """The message for the strategy's author, or None when no step splices a parameter."""
    if not splices:
        return None
    first = splices[0]
    listed = ", ".join(f"$(params.{s.parameter}) in step {s.step}" for s in splices)
    env = _env_name(first.parameter)
    return (
        f"parameter values are pasted into shell scripts and would run as shell code: {listed}."
        f" Pass each through env instead, e.g. env: [{{name: {env}, value:"
        f' "$(params.{first.parameter})"}}] and "${env}" in the script'
    )
