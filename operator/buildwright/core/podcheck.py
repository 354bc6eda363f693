"""What the API server would refuse in a build Pod, found before the Pod is sent.

A Pod the API server refuses ends the BuildRun with `PodCreationFailed` and the server's own
words (`lifecycle.pod_rejection`); that covers everything. The checks here come first, for
the mistakes users make most, so that the message names the field of the strategy, Build or
BuildRun to change rather than a container index of a Pod they never wrote. They follow the
API server's validation of a Pod (Kubernetes 1.34): names of containers and environment
variables, images, resource quantities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from buildwright.core.formats import go_quote
from buildwright.core.labels import qualified_name_errors
from buildwright.core.reasons import Failure, Reason
from buildwright.core.resolve import MAX_ACTIVE_DEADLINE_SECONDS

STEP_PREFIX = "step-"
#: The steps buildwright adds to every build Pod (as `step-<name>`); a strategy step of the
#: same name would make two containers of one name.
OWN_STEPS = frozenset({"source-default", "source-local", "image-processing", "results"})


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL_MAX = 63
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})

_GENERATION = "the build Pod would be invalid: "


def _failure(message: str) -> Failure:
    return Failure(Reason.TASKRUN_GENERATION_FAILED, _GENERATION + message)


def container_name_errors(name: str) -> list[str]:
    """Why `name` is not a valid container name (a DNS-1123 label), as Kubernetes says it."""
    errors = []
    if len(name) > _DNS1123_LABEL_MAX:
        errors.append(f"must be no more than {_DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL.fullmatch(name):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or"
            " '-', and must start and end with an alphanumeric character"
        )
    return errors


def env_name_error(name: str) -> str | None:
    """Why `name` cannot name an environment variable of a container, or None.

    Kubernetes 1.34 accepts any printable ASCII characters except `=`, at least one."""
    if not name:
        return "must not be empty"
    if any(not (" " <= char <= "~") or char == "=" for char in name):
        return "must consist of printable ASCII characters other than '='"
    return None


def strategy_steps_failure(step_names: Iterable[str]) -> Failure | None:
    """Strategy step names that cannot become containers `step-<name>`: invalid, one of
    buildwright's own steps, or used twice."""
    seen: set[str] = set()
    for name in step_names:
        where = f"strategy step {_quoted(name)}"
        if name in OWN_STEPS:
            return _failure(
                f"{where} has the name of a step buildwright adds itself"
                f" ({', '.join(sorted(OWN_STEPS))}); rename it in the strategy"
            )
        if name in seen:
            return _failure(f"{where} is defined twice; step names must be unique")
        seen.add(name)
        errors = container_name_errors(STEP_PREFIX + name) if name else ["must not be empty"]
        if errors:
            return _failure(
                f"{where}: its container name {_quoted(STEP_PREFIX + name)} is not valid: "
                + ", ".join(errors)
            )
    return None


def parse_quantity(text: str) -> Decimal | None:
    """A Kubernetes resource quantity (`500m`, `1Gi`, `2e3`) as a number, or None when the
    API server would not accept it."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        exponent = int(suffix[1:])
        if abs(exponent) > 1000:  # far beyond what a quantity can hold
            return None
        return number.scaleb(exponent)
    return number


def _resource_name_error(name: str) -> str | None:
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return None
    if "/" in name and not qualified_name_errors(name):
        return None  # an extended resource, such as example.com/gpu
    return (
        "must be a standard resource (cpu, memory, ephemeral-storage, hugepages-<size>)"
        " or a fully qualified extended resource name such as example.com/gpu"
    )


def resources_failure(where: str, resources: Mapping[str, Any] | None) -> Failure | None:
    """Resource names and quantities the API server refuses; requests above limits."""
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("limits", "requests"):
        for resource, value in ((resources or {}).get(kind) or {}).items():
            field = f"{where} resources.{kind}[{_quoted(resource)}]"
            name_error = _resource_name_error(str(resource))
            if name_error is not None:
                return _failure(f"{field}: {name_error}")
            quantity = parse_quantity(str(value))
            if quantity is None:
                return _failure(
                    f"{field}: {_quoted(str(value))} is not a quantity; write for example"
                    " 500m, 2, 512Mi or 1Gi"
                )
            if quantity < 0:
                return _failure(f"{field}: must be greater than or equal to 0")
            parsed.setdefault(kind, {})[str(resource)] = quantity
    limits = parsed.get("limits", {})
    for resource, request in parsed.get("requests", {}).items():
        limit = limits.get(resource)
        if limit is not None and request > limit:
            return _failure(
                f"{where} resources.requests[{_quoted(resource)}]: must be less than or equal"
                f" to its limit ({resources['limits'][resource]})"  # type: ignore[index]
            )
    return None


def manifest_failure(manifest: Mapping[str, Any]) -> Failure | None:
    """The first thing in a rendered build Pod that the API server would refuse, or None."""
    spec = manifest.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    names: set[str] = set()
    for container in containers:
        name = str(container.get("name", ""))
        where = f"container {_quoted(name)}"
        errors = container_name_errors(name)
        if errors:
            return _failure(f"{where}: the name is not valid: " + ", ".join(errors))
        if name in names:
            return _failure(f"{where} appears twice; container names must be unique")
        names.add(name)
        if not str(container.get("image") or "").strip():
            return _failure(f"{where} has no image; set the step's image in the strategy")
        for var in container.get("env") or []:
            error = env_name_error(str(var.get("name", "")))
            if error is not None:
                return _failure(
                    f"{where}: environment variable {_quoted(str(var.get('name', '')))}: {error}"
                )
        failure = resources_failure(where, container.get("resources"))
        if failure is not None:
            return failure
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= int(deadline) <= MAX_ACTIVE_DEADLINE_SECONDS:
        return _failure(
            f"activeDeadlineSeconds {deadline} is outside 1…{MAX_ACTIVE_DEADLINE_SECONDS}"
        )
    return None


def _quoted(text: str) -> str:
    return go_quote(text)
