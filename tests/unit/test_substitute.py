"""Tekton-style substitution: reference forms, array expansion, single pass, durations."""

from __future__ import annotations

import pytest

from buildwright.core.formats import (
    format_go_duration,
    format_go_duration_nanos,
    parse_duration,
    parse_duration_nanos,
)
from buildwright.core.substitute import (
    SubstitutionError,
    referenced_parameters,
    references_parameter,
    substitute_list,
    substitute_string,
)

PARAMS: dict[str, str | list[str]] = {
    "dockerfile": "Dockerfile.prod",
    "other": "OTHER",
    "dotted.name": "dotted",
    "build-args": ["A=1", "B=2"],
    "empty": [],
}


@pytest.mark.parametrize(
    "text",
    ["--f=$(params.dockerfile)", "--f=$(params['dockerfile'])", '--f=$(params["dockerfile"])'],
)
def test_all_three_reference_forms_are_replaced(text: str) -> None:
    assert substitute_string(text, PARAMS) == "--f=Dockerfile.prod"


def test_bracket_form_allows_dotted_names() -> None:
    assert substitute_string("$(params['dotted.name'])", PARAMS) == "dotted"


def test_results_paths() -> None:
    assert substitute_string("> $(results.shp-image-digest.path)", PARAMS) == (
        "> /tekton/results/shp-image-digest"
    )
    assert substitute_string("$(results['shp-error-reason'].path)", PARAMS) == (
        "/tekton/results/shp-error-reason"
    )


def test_several_references_in_one_string() -> None:
    text = "$(params.other)/$(params.dockerfile):$(params.other)"
    assert substitute_string(text, PARAMS) == "OTHER/Dockerfile.prod:OTHER"


def test_substituted_values_are_not_scanned_again() -> None:
    params: dict[str, str | list[str]] = {
        "a": "$(params.b)",
        "b": "secret",
        "arr": ["$(params.b)", "$(results.x.path)"],
    }
    assert substitute_string("x $(params.a) y", params) == "x $(params.b) y"
    assert substitute_list(["$(params.arr[*])"], params) == ["$(params.b)", "$(results.x.path)"]


def test_other_dollar_forms_are_left_alone() -> None:
    text = 'echo "$(date)" $HOME ${X} $(context.taskRun.name) $(params.'
    assert substitute_string(text, PARAMS) == text


def test_array_expands_into_one_element_per_item() -> None:
    args = ["--build-args", "$(params.build-args[*])", "--end"]
    assert substitute_list(args, PARAMS) == ["--build-args", "A=1", "B=2", "--end"]
    assert substitute_list(["$(params['build-args'][*])"], PARAMS) == ["A=1", "B=2"]


def test_empty_array_removes_the_element() -> None:
    assert substitute_list(["a", "$(params.empty[*])", "b"], PARAMS) == ["a", "b"]


def test_array_inside_a_string_is_an_error() -> None:
    with pytest.raises(SubstitutionError, match="build-args"):
        substitute_list(["--x=$(params.build-args[*])"], PARAMS)
    with pytest.raises(SubstitutionError, match="build-args"):
        substitute_string("$(params.build-args)", PARAMS)


def test_star_on_a_string_parameter_is_an_error() -> None:
    with pytest.raises(SubstitutionError, match="dockerfile"):
        substitute_list(["$(params.dockerfile[*])"], PARAMS)


def test_undefined_parameter_is_an_error() -> None:
    with pytest.raises(SubstitutionError, match='"nope" is not defined'):
        substitute_string("$(params.nope)", PARAMS)
    with pytest.raises(SubstitutionError, match='"nope" is not defined'):
        substitute_list(["$(params.nope[*])"], PARAMS)


def test_reference_detection_is_a_prefix_match() -> None:
    assert references_parameter("$(params.dockerfile)", "dockerfile")
    assert references_parameter("$(params['dockerfile'])", "dockerfile")
    assert references_parameter('$(params["dockerfile"])', "dockerfile")
    # Upstream quirk kept on purpose: "docker" matches a reference to "dockerfile".
    assert references_parameter("$(params.dockerfile)", "docker")
    assert not references_parameter("$(params.target)", "dockerfile")
    assert referenced_parameters(["$(params.a) $(params['b'])", "$(params.c[*])"]) == {
        "a",
        "b",
        "c",
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("10m", 600),
        ("0", 0),
        ("-2s", -2),
        ("1h2m3.25s", 3723.25),
        (".5s", 0.5),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("3ns", 3e-9),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "h", "1.5", "s1", "1h 2m", "--1s", "."])
def test_parse_duration_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fractions_are_exact_in_nanoseconds() -> None:
    assert parse_duration_nanos("0.1s") == 100_000_000
    assert parse_duration_nanos("1.000000001s") == 1_000_000_001


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (60, "1m0s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (5400, "1h30m0s"),
        (3723.25, "1h2m3.25s"),
        (-90, "-1m30s"),
        (86400 * 2, "48h0m0s"),
    ],
)
def test_format_go_duration(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


def test_format_small_units() -> None:
    assert format_go_duration_nanos(1) == "1ns"
    assert format_go_duration_nanos(1500) == "1.5µs"
    assert format_go_duration_nanos(2_000_000) == "2ms"


def test_format_and_parse_round_trip() -> None:
    for text in ("1h0m0s", "2m30s", "1.5s", "45m0s"):
        assert format_go_duration(parse_duration(text)) == text
