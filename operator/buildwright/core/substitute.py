"""Tekton-style variable substitution in strategy step fields.

Strategies refer to parameters as `$(params.X)`, `$(params['X'])` or `$(params["X"])`, to
result files as `$(results.X.path)`, and expand array parameters with a list element that is
exactly `$(params.X[*])`. Substitution is a single left-to-right pass over the original text:
a value is inserted as an opaque string and never scanned again, so a parameter value that
itself looks like `$(params.other)` stays literal and cannot pull in another value.

Which string a value is inserted as (for instance escaped for Kubernetes' own `$(VAR)`
expansion) is the caller's decision; this module only places values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

RESULTS_DIR = "/tekton/results"

ParamValues = Mapping[str, str | Sequence[str]]
"""Parameter name to value: a string for string parameters, a sequence for array ones."""

_NAME = r"[A-Za-z0-9_-]+"
_QUOTED = r"[^'\"\]\)]+"
_REFERENCE = re.compile(
    r"\$\(params(?:\.(?P<dot>" + _NAME + r")|\[(?P<q>['\"])(?P<quoted>" + _QUOTED + r")(?P=q)\])"
    r"(?P<star>\[\*\])?\)"
    r"|\$\(results(?:\.(?P<rdot>"
    + _NAME
    + r")|\[(?P<rq>['\"])(?P<rquoted>"
    + _QUOTED
    + r")(?P=rq)\])\.path\)"
)


class SubstitutionError(ValueError):
    """A reference that cannot be resolved: an unknown parameter, or an array parameter used
    where only a string fits."""


def result_path(name: str) -> str:
    """The file a step writes result `name` to."""
    return f"{RESULTS_DIR}/{name}"


def _param_name(match: re.Match[str]) -> str | None:
    return match.group("dot") or match.group("quoted")


def _result_name(match: re.Match[str]) -> str | None:
    return match.group("rdot") or match.group("rquoted")


def substitute_string(text: str, params: ParamValues) -> str:
    """Replace every parameter and result reference in `text` in one pass.

    Raises SubstitutionError for an undefined parameter or an array parameter (with or
    without `[*]`) inside a string: only a whole list element may expand an array.
    """
    pieces: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(text):
        pieces.append(text[position : match.start()])
        position = match.end()
        result = _result_name(match)
        if result is not None:
            pieces.append(result_path(result))
            continue
        name = _param_name(match)
        assert name is not None  # one of the two alternatives always matched
        if name not in params:
            raise SubstitutionError(f'parameter "{name}" is not defined in the build strategy')
        value = params[name]
        if not isinstance(value, str) or match.group("star"):
            raise SubstitutionError(
                f'array parameter "{name}" can only be used as a whole argument '
                f'"$(params.{name}[*])"'
            )
        pieces.append(value)
    pieces.append(text[position:])
    return "".join(pieces)


def _whole_array_reference(item: str) -> str | None:
    """The parameter name when `item` is exactly one `$(params.X[*])` reference."""
    match = _REFERENCE.fullmatch(item)
    if match is None or not match.group("star"):
        return None
    return _param_name(match)


def substitute_list(items: Iterable[str], params: ParamValues) -> list[str]:
    """Substitute a command or args list: an element that is exactly `$(params.X[*])` becomes
    one element per item of array X (none for an empty array); other elements are
    substituted as strings."""
    out: list[str] = []
    for item in items:
        name = _whole_array_reference(item)
        if name is not None:
            if name not in params:
                raise SubstitutionError(f'parameter "{name}" is not defined in the build strategy')
            value = params[name]
            if isinstance(value, str):
                raise SubstitutionError(f'string parameter "{name}" cannot be expanded with "[*]"')
            out.extend(value)
        else:
            out.append(substitute_string(item, params))
    return out


def references_parameter(text: str, name: str) -> bool:
    """Whether `text` refers to parameter `name` the way Shipwright detects it: a prefix
    match on `$(params.NAME`, `$(params['NAME'` or `$(params["NAME"`, so `NAME` also
    matches a reference to a longer name that starts with it (an upstream quirk kept so
    that env vars of ConfigMap/Secret-backed values land in the same steps)."""
    return any(
        prefix in text
        for prefix in (f"$(params.{name}", f"$(params['{name}'", f'$(params["{name}"')
    )


def any_references_parameter(texts: Iterable[str], name: str) -> bool:
    """Whether any of `texts` refers to parameter `name` (see references_parameter)."""
    return any(references_parameter(text, name) for text in texts)


def referenced_parameters(texts: Sequence[str]) -> set[str]:
    """Names of all parameters referenced (exactly) in `texts`."""
    names: set[str] = set()
    for text in texts:
        for match in _REFERENCE.finditer(text):
            name = _param_name(match)
            if name is not None:
                names.add(name)
    return names
