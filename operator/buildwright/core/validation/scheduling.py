"""Where the build Pod may run: nodeSelector labels, tolerations (only NoSchedule, no
tolerationSeconds), schedulerName and runtimeClassName."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from buildwright.api.base import Toleration
from buildwright.core.labels import (
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import last_failure


def node_selector_failures(node_selector: Mapping[str, str] | None) -> list[Failure]:
    failures: list[Failure] = []
    for key, value in (node_selector or {}).items():
        key_errors = qualified_name_errors(key)
        if key_errors:
            failures.append(
                Failure(
                    Reason.NODE_SELECTOR_NOT_VALID,
                    "Node selector key not valid: " + ", ".join(key_errors),
                )
            )
        value_errors = label_value_errors(value)
        if value_errors:
            failures.append(
                Failure(
                    Reason.NODE_SELECTOR_NOT_VALID,
                    "Node selector value not valid: " + ", ".join(value_errors),
                )
            )
    return failures


def validate_node_selector(node_selector: Mapping[str, str] | None) -> Failure | None:
    """#10 nodeSelector (Build): keys qualified names, values label values; last wins."""
    return last_failure(node_selector_failures(node_selector))


_OPERATOR_MESSAGE = "Toleration operator not valid. Must be one of: 'Exists', 'Equal'"


_EFFECT_MESSAGE = "Only the 'NoSchedule' toleration effect is supported."


_SECONDS_MESSAGE = "Specifying TolerationSeconds is not supported."


def toleration_failures(toleration: Toleration, *, buildrun: bool) -> list[Failure]:
    # Build-level messages are the bare Kubernetes texts; BuildRun-level ones name the field.
    failures: list[str] = []
    key_errors = qualified_name_errors(toleration.key or "")
    if key_errors:
        prefix = "Toleration key not valid: " if buildrun else ""
        failures.append(prefix + ", ".join(key_errors))
    if toleration.operator not in ("Exists", "Equal"):
        failures.append(_OPERATOR_MESSAGE)
    value_errors = label_value_errors(toleration.value or "")
    if value_errors:
        prefix = "Toleration value not valid: " if buildrun else ""
        failures.append(prefix + ", ".join(value_errors))
    if toleration.effect not in (None, "", "NoSchedule"):
        failures.append(_EFFECT_MESSAGE)
    if toleration.toleration_seconds is not None:
        failures.append(_SECONDS_MESSAGE)
    return [Failure(Reason.TOLERATION_NOT_VALID, message) for message in failures]


def validate_tolerations(tolerations: Sequence[Toleration] | None) -> Failure | None:
    """#11 tolerations (Build): every check of every toleration runs; the last failure wins."""
    return last_failure(
        failure
        for toleration in tolerations or ()
        for failure in toleration_failures(toleration, buildrun=False)
    )


def validate_scheduler_name(scheduler_name: str | None) -> Failure | None:
    """#12 schedulerName: a qualified name when set (an empty string is not)."""
    if scheduler_name is None:
        return None
    errors = qualified_name_errors(scheduler_name)
    if errors:
        return Failure(
            Reason.SCHEDULER_NAME_NOT_VALID, "Scheduler name not valid: " + ", ".join(errors)
        )
    return None


def validate_runtime_class_name(runtime_class_name: str | None) -> Failure | None:
    """#13 runtimeClassName: a DNS-1123 subdomain when set."""
    if runtime_class_name is None:
        return None
    errors = dns1123_subdomain_errors(runtime_class_name)
    if errors:
        return Failure(
            Reason.RUNTIME_CLASS_NAME_NOT_VALID,
            "RuntimeClassName not valid: " + ", ".join(errors),
        )
    return None
