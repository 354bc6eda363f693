"""Validation of paramValues against the parameters a strategy declares.

The same checks guard Build registration (without the missing-value check: a BuildRun may
still provide the value) and BuildRun preflight (on Build ∪ BuildRun values, missing values
flagged). Resolving values into step arguments lives in `core.resolve`.

Names in messages are listed comma+space separated in order of appearance, each once:
restricted and undefined names in the order of the paramValues, the other checks in the order
of the strategy's parameters. This is upstream's order wherever upstream is deterministic (it
lists merged Build+BuildRun values in random map order, and repeats a name that occurs twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from buildwright.api.v1beta1 import Parameter, ParamValue, SingleValue
from buildwright.core.reasons import Failure, Reason

#: Names users may not set: they were system parameters of the v1alpha1 era.
RESERVED_PARAMETER_NAMES = frozenset({"BUILDER_IMAGE", "DOCKERFILE", "CONTEXT_DIR"})
#: Prefix of the system parameters (`shp-output-image`, …) users may not set either.
RESERVED_PARAMETER_PREFIX = "shp-"


def is_reserved_parameter(name: str) -> bool:
    """True for names a Build or BuildRun must not give a value to."""
    return name in RESERVED_PARAMETER_NAMES or name.startswith(RESERVED_PARAMETER_PREFIX)


def merge_param_values(
    build_values: Sequence[ParamValue] | None, buildrun_values: Sequence[ParamValue] | None
) -> list[ParamValue]:
    """Build values overridden by BuildRun values of the same name.

    Order: the Build's values (each replaced in place by the BuildRun's value of that name),
    then the BuildRun-only values in their order.
    """
    overrides: dict[str, ParamValue] = {}
    for value in buildrun_values or ():
        overrides[value.name] = value
    merged: list[ParamValue] = []
    seen: set[str] = set()
    for value in build_values or ():
        if value.name in seen:
            continue
        seen.add(value.name)
        merged.append(overrides.get(value.name, value))
    for value in buildrun_values or ():
        if value.name not in seen:
            seen.add(value.name)
            merged.append(overrides[value.name])
    return merged


def _has_single_value(value: SingleValue) -> bool:
    return (
        value.value is not None
        or value.config_map_value is not None
        or value.secret_value is not None
    )


def _has_more_than_one_value(value: SingleValue) -> bool:
    present = [value.value, value.config_map_value, value.secret_value]
    return sum(item is not None for item in present) > 1


def _incomplete_config_map(value: SingleValue) -> bool:
    ref = value.config_map_value
    return ref is not None and (not ref.name or not ref.key)


def _incomplete_secret(value: SingleValue) -> bool:
    ref = value.secret_value
    return ref is not None and (not ref.name or not ref.key)


class _NameList:
    """Names in first-appearance order, each once."""

    def __init__(self) -> None:
        self._names: dict[str, None] = {}

    def add(self, name: str) -> None:
        self._names.setdefault(name, None)

    def __bool__(self) -> bool:
        return bool(self._names)

    def joined(self) -> str:
        return ", ".join(self._names)


def _find_value(values: Iterable[ParamValue], name: str) -> ParamValue | None:
    # The first entry wins when a name is given twice, as upstream.
    return next((value for value in values if value.name == name), None)


def validate_parameters(
    strategy_params: Sequence[Parameter] | None,
    param_values: Sequence[ParamValue] | None,
    *,
    check_missing: bool,
) -> Failure | None:
    """The first check that fails, or None when the values fit the strategy.

    `check_missing=False` is the Build-level variant (MissingParameterValues not flagged).
    """
    definitions = list(strategy_params or ())
    values = list(param_values or ())
    defined = {definition.name for definition in definitions}

    restricted, undefined = _NameList(), _NameList()
    for given in values:
        if is_reserved_parameter(given.name):
            restricted.add(given.name)
        elif given.name not in defined:
            undefined.add(given.name)
    if restricted:
        return Failure(
            Reason.RESTRICTED_PARAMETERS_IN_USE,
            "The following parameters are restricted and cannot be set: " + restricted.joined(),
        )
    if undefined:
        return Failure(
            Reason.UNDEFINED_PARAMETER,
            "The following parameters are not defined in the build strategy: " + undefined.joined(),
        )

    wrong_type, missing, inconsistent = _NameList(), _NameList(), _NameList()
    empty_items, incomplete_cm, incomplete_secret = _NameList(), _NameList(), _NameList()
    for definition in definitions:
        name = definition.name
        value = _find_value(values, name)
        if definition.type == "array":
            if value is not None:
                if _has_single_value(value):
                    wrong_type.add(name)
                items = value.values or []
                if any(not _has_single_value(item) for item in items):
                    empty_items.add(name)
                if any(_has_more_than_one_value(item) for item in items):
                    inconsistent.add(name)
                if any(_incomplete_config_map(item) for item in items):
                    incomplete_cm.add(name)
                if any(_incomplete_secret(item) for item in items):
                    incomplete_secret.add(name)
            if definition.defaults is None and (value is None or value.values is None):
                missing.add(name)
        else:
            if value is not None:
                if value.values is not None:
                    wrong_type.add(name)
                if _has_more_than_one_value(value):
                    inconsistent.add(name)
                if _incomplete_config_map(value):
                    incomplete_cm.add(name)
                if _incomplete_secret(value):
                    incomplete_secret.add(name)
            if definition.default is None and (value is None or not _has_single_value(value)):
                missing.add(name)

    checks: list[tuple[_NameList, str, str]] = [
        (
            wrong_type,
            Reason.WRONG_PARAMETER_VALUE_TYPE,
            "The values for the following parameters are using the wrong type: ",
        ),
        (
            missing if check_missing else _NameList(),
            Reason.MISSING_PARAMETER_VALUES,
            "The following parameters are required but no value has been provided: ",
        ),
        (
            inconsistent,
            Reason.INCONSISTENT_PARAMETER_VALUES,
            "The following parameters have more than one of 'configMapValue', 'secretValue',"
            " and 'value' set: ",
        ),
        (
            empty_items,
            Reason.EMPTY_ARRAY_ITEM_PARAMETER_VALUES,
            "The values for the following array parameters are containing at least one item"
            " where none of 'configMapValue', 'secretValue', and 'value' are set: ",
        ),
        (
            incomplete_cm,
            Reason.INCOMPLETE_CONFIGMAP_VALUE_PARAMETER_VALUES,
            "The values for the following parameters are containing a 'configMapValue' with"
            " an empty 'name' or 'key': ",
        ),
        (
            incomplete_secret,
            Reason.INCOMPLETE_SECRET_VALUE_PARAMETER_VALUES,
            "The values for the following parameters are containing a 'secretValue' with"
            " an empty 'name' or 'key': ",
        ),
    ]
    for names, reason, prefix in checks:
        if names:
            return Failure(reason, prefix + names.joined())
    return None
