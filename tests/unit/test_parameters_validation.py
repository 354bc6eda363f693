"""Parameter validation: each reason, its exact message, and the check order."""

from __future__ import annotations

from typing import Any

import pytest

from buildwright.api.v1beta1 import Parameter, ParamValue
from buildwright.core.parameters import (
    is_reserved_parameter,
    merge_param_values,
    validate_parameters,
)
from buildwright.core.reasons import Failure, Reason


def params(*items: dict[str, Any]) -> list[Parameter]:
    return [Parameter.model_validate({"description": "d", **item}) for item in items]


def values(*items: dict[str, Any]) -> list[ParamValue]:
    return [ParamValue.model_validate(item) for item in items]


STRATEGY = params(
    {"name": "s-required"},
    {"name": "s-optional", "default": "x"},
    {"name": "a-required", "type": "array"},
    {"name": "a-optional", "type": "array", "defaults": []},
)
REQUIRED_GIVEN = values(
    {"name": "s-required", "value": "v"},
    {"name": "a-required", "values": [{"value": "1"}]},
)


def check(given: list[ParamValue], *, missing: bool = True) -> Failure | None:
    return validate_parameters(STRATEGY, given, check_missing=missing)


def test_all_required_values_given_passes() -> None:
    assert check(REQUIRED_GIVEN) is None


def test_nothing_declared_nothing_given_passes() -> None:
    assert validate_parameters(None, None, check_missing=True) is None


@pytest.mark.parametrize("name", ["BUILDER_IMAGE", "DOCKERFILE", "CONTEXT_DIR", "shp-output-image"])
def test_reserved_names(name: str) -> None:
    assert is_reserved_parameter(name)
    assert not is_reserved_parameter("dockerfile")


def test_restricted_parameters_listed_in_given_order() -> None:
    given = values({"name": "shp-x", "value": "1"}, {"name": "DOCKERFILE", "value": "2"})
    assert check(given + REQUIRED_GIVEN) == Failure(
        Reason.RESTRICTED_PARAMETERS_IN_USE,
        "The following parameters are restricted and cannot be set: shp-x, DOCKERFILE",
    )


def test_restricted_wins_over_undefined() -> None:
    given = values({"name": "nope", "value": "1"}, {"name": "shp-x", "value": "1"})
    failure = check(given)
    assert failure is not None and failure.reason == Reason.RESTRICTED_PARAMETERS_IN_USE


def test_undefined_parameters_listed_once_each() -> None:
    given = values(
        {"name": "zeta", "value": "1"},
        {"name": "alpha", "value": "1"},
        {"name": "zeta", "value": "2"},
    )
    assert check(given + REQUIRED_GIVEN) == Failure(
        Reason.UNDEFINED_PARAMETER,
        "The following parameters are not defined in the build strategy: zeta, alpha",
    )


def test_wrong_type_both_directions_in_strategy_order() -> None:
    given = values(
        {"name": "a-required", "value": "single"},
        {"name": "s-required", "values": [{"value": "1"}]},
    )
    assert check(given) == Failure(
        Reason.WRONG_PARAMETER_VALUE_TYPE,
        "The values for the following parameters are using the wrong type: s-required, a-required",
    )


def test_wrong_type_wins_over_missing() -> None:
    failure = check(values({"name": "s-optional", "values": []}))
    assert failure is not None and failure.reason == Reason.WRONG_PARAMETER_VALUE_TYPE


def test_missing_values_flagged_only_when_asked() -> None:
    assert check([]) == Failure(
        Reason.MISSING_PARAMETER_VALUES,
        "The following parameters are required but no value has been provided: "
        "s-required, a-required",
    )
    assert check([], missing=False) is None


def test_param_value_without_any_value_counts_as_missing() -> None:
    given = values({"name": "s-required"}, {"name": "a-required"})
    failure = check(given)
    assert failure is not None
    assert failure.message.endswith("s-required, a-required")


def test_empty_string_default_and_empty_defaults_make_parameters_optional() -> None:
    strategy = params(
        {"name": "s", "default": ""},
        {"name": "a", "type": "array", "defaults": []},
    )
    assert validate_parameters(strategy, [], check_missing=True) is None


def test_empty_values_list_satisfies_a_required_array() -> None:
    given = values({"name": "s-required", "value": "v"}, {"name": "a-required", "values": []})
    assert check(given) is None


def test_missing_wins_over_inconsistent() -> None:
    given = values({"name": "s-optional", "value": "v", "secretValue": {"name": "s", "key": "k"}})
    failure = check(given)
    assert failure is not None and failure.reason == Reason.MISSING_PARAMETER_VALUES


def test_inconsistent_values_string_and_array_items() -> None:
    given = values(
        {"name": "s-required", "value": "v", "configMapValue": {"name": "c", "key": "k"}},
        {
            "name": "a-required",
            "values": [{"value": "1", "secretValue": {"name": "s", "key": "k"}}],
        },
    )
    assert check(given) == Failure(
        Reason.INCONSISTENT_PARAMETER_VALUES,
        "The following parameters have more than one of 'configMapValue', 'secretValue', and "
        "'value' set: s-required, a-required",
    )


def test_empty_array_item() -> None:
    given = REQUIRED_GIVEN + values({"name": "a-optional", "values": [{"value": "1"}, {}]})
    assert check(given) == Failure(
        Reason.EMPTY_ARRAY_ITEM_PARAMETER_VALUES,
        "The values for the following array parameters are containing at least one item where "
        "none of 'configMapValue', 'secretValue', and 'value' are set: a-optional",
    )


def test_inconsistent_wins_over_empty_item() -> None:
    given = values(
        {"name": "s-required", "value": "v", "configMapValue": {"name": "c", "key": "k"}},
        {"name": "a-required", "values": [{}]},
    )
    failure = check(given)
    assert failure is not None and failure.reason == Reason.INCONSISTENT_PARAMETER_VALUES


def test_incomplete_config_map_value() -> None:
    given = values(
        {"name": "s-required", "configMapValue": {"name": "", "key": "k"}},
        {"name": "a-required", "values": [{"configMapValue": {"name": "c", "key": ""}}]},
    )
    assert check(given) == Failure(
        Reason.INCOMPLETE_CONFIGMAP_VALUE_PARAMETER_VALUES,
        "The values for the following parameters are containing a 'configMapValue' with an "
        "empty 'name' or 'key': s-required, a-required",
    )


def test_incomplete_secret_value_comes_after_config_map() -> None:
    secret_only = values(
        {"name": "s-required", "secretValue": {"name": "s", "key": ""}},
        {"name": "a-required", "values": [{"value": "1"}]},
    )
    assert check(secret_only) == Failure(
        Reason.INCOMPLETE_SECRET_VALUE_PARAMETER_VALUES,
        "The values for the following parameters are containing a 'secretValue' with an "
        "empty 'name' or 'key': s-required",
    )
    both = values(
        {"name": "s-required", "secretValue": {"name": "", "key": "k"}},
        {"name": "a-required", "values": [{"configMapValue": {"name": "", "key": "k"}}]},
    )
    failure = check(both)
    assert failure is not None
    assert failure.reason == Reason.INCOMPLETE_CONFIGMAP_VALUE_PARAMETER_VALUES


def test_first_value_of_a_name_counts() -> None:
    given = values(
        {"name": "s-required", "value": "v"},
        {"name": "s-required", "values": [{"value": "1"}]},
        {"name": "a-required", "values": []},
    )
    assert check(given) is None


def test_merge_buildrun_wins_by_name_and_keeps_order() -> None:
    build = values({"name": "a", "value": "1"}, {"name": "b", "value": "2"})
    buildrun = values({"name": "c", "value": "3"}, {"name": "a", "value": "9"})
    merged = merge_param_values(build, buildrun)
    assert [(v.name, v.value) for v in merged] == [("a", "9"), ("b", "2"), ("c", "3")]
    assert merge_param_values(None, None) == []
