"""The results step and the termination-message helpers it shares with the operator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildwright.core.contract import (
    PRIORITY,
    TERMINATION_MESSAGE_LIMIT,
    parse_termination_message,
    render_termination_message,
    select_results,
)
from buildwright.steps import results
from buildwright.steps.resultfiles import strip_result_value, write_result

DIGEST = "sha256:" + "ab" * 32
SHA = "0123456789abcdef0123456789abcdef01234567"


def run_results(tmp_path: Path, files: dict[str, str | bytes]) -> tuple[int, str, str]:
    results_dir = tmp_path / "results"
    results_dir.mkdir(exist_ok=True)
    for name, value in files.items():
        path = results_dir / name
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value)
    log = tmp_path / "termination-log"
    code = results.main(["--results-dir", str(results_dir), "--termination-log", str(log)])
    return code, log.read_text(encoding="utf-8"), str(results_dir)


def test_reports_every_result_sorted_with_type_one(tmp_path: Path) -> None:
    code, message, _ = run_results(tmp_path, {
        "shp-source-default-commit-sha": SHA + "\n",
        "shp-image-digest": DIGEST,
        "shp-image-size": "1234\n",
    })
    assert code == 0
    assert json.loads(message) == [
        {"key": "shp-image-digest", "value": DIGEST, "type": 1},
        {"key": "shp-image-size", "value": "1234", "type": 1},
        {"key": "shp-source-default-commit-sha", "value": SHA, "type": 1},
    ]


def test_strips_exactly_one_trailing_newline(tmp_path: Path) -> None:
    _, message, _ = run_results(tmp_path, {"a": "x\n\n", "b": "  y  ", "c": "", "d": "z\r\n"})
    assert parse_termination_message(message) == {"a": "x\n", "b": "  y  ", "c": "", "d": "z"}


def test_ignores_directories_and_hidden_files(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    (results_dir / "subdir").mkdir(parents=True)
    (results_dir / "..data").mkdir()
    _, message, _ = run_results(tmp_path, {".hidden": "h", "shp-image-size": "1"})
    assert parse_termination_message(message) == {"shp-image-size": "1"}


def test_undecodable_bytes_do_not_break_the_message(tmp_path: Path) -> None:
    _, message, _ = run_results(tmp_path, {"shp-error-message": b"bad \xff byte\n"})
    assert parse_termination_message(message) == {"shp-error-message": "bad \ufffd byte"}


def test_missing_results_dir_reports_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert results.main(["--results-dir", str(tmp_path / "nope"),
                         "--termination-log", str(log)]) == 0
    assert log.read_text() == "[]"


def test_unwritable_termination_log_still_exits_zero(tmp_path: Path) -> None:
    assert results.main(["--results-dir", str(tmp_path),
                         "--termination-log", str(tmp_path / "no" / "such" / "log")]) == 0


def test_runs_as_the_buildwright_step_subcommand(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "shp-image-digest").write_text(DIGEST)
    log = tmp_path / "log"
    completed = subprocess.run(
        [sys.executable, "-m", "buildwright.steps", "results", "--results-dir",
         str(tmp_path / "r"), "--termination-log", str(log)],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert parse_termination_message(log.read_text()) == {"shp-image-digest": DIGEST}


def test_defaults_are_tekton_paths() -> None:
    args = results.build_parser().parse_args([])
    assert args.results_dir == "/tekton/results"
    assert args.termination_log == "/dev/termination-log"


# --- the 4096-byte limit ---------------------------------------------------------------------


def _size(message: str) -> int:
    return len(message.encode("utf-8"))


def test_long_error_message_is_truncated_and_the_rest_kept(tmp_path: Path) -> None:
    code, message, _ = run_results(tmp_path, {
        "shp-error-reason": "GitError",
        "shp-error-message": "e" * 10_000,
        "shp-source-default-commit-sha": SHA,
        "shp-image-digest": DIGEST,
    })
    assert code == 0
    assert _size(message) <= TERMINATION_MESSAGE_LIMIT
    parsed = parse_termination_message(message)
    assert parsed["shp-error-reason"] == "GitError"
    assert parsed["shp-image-digest"] == DIGEST
    assert parsed["shp-source-default-commit-sha"] == SHA
    assert parsed["shp-error-message"].endswith("...")
    # Truncation uses the room there is, rather than dropping the message.
    assert _size(message) > TERMINATION_MESSAGE_LIMIT - 10


def test_vulnerabilities_are_cut_at_an_entry_boundary() -> None:
    vulnerabilities = ",".join(f"CVE-2024-{n:05d}:{'LMHC'[n % 4]}" for n in range(1000))
    chosen = select_results({"shp-image-vulnerabilities": vulnerabilities,
                             "shp-image-digest": DIGEST})
    kept = chosen["shp-image-vulnerabilities"]
    assert vulnerabilities.startswith(kept)
    assert len(kept) < len(vulnerabilities)
    for entry in kept.split(","):
        identifier, severity = entry.split(":")
        assert identifier.startswith("CVE-2024-") and severity in "LMHC"
    assert chosen["shp-image-digest"] == DIGEST


def test_priority_results_win_over_unknown_ones() -> None:
    crowd = {f"custom-{n:03d}": "v" * 100 for n in range(60)}
    important = {key: f"value-of-{key}" for key in PRIORITY}
    chosen = select_results({**crowd, **important})
    for key in PRIORITY:
        assert chosen[key] == important[key]
    assert 0 < len(set(chosen) & set(crowd)) < len(crowd)
    assert _size(render_termination_message(chosen)) <= TERMINATION_MESSAGE_LIMIT


def test_unknown_results_win_over_error_message_which_is_shortened() -> None:
    chosen = select_results({"custom": "c" * 3000, "shp-error-message": "m" * 3000})
    assert chosen["custom"] == "c" * 3000
    assert chosen["shp-error-message"].startswith("m") and len(chosen["shp-error-message"]) < 1100


def test_a_value_that_cannot_fit_is_dropped_not_cut() -> None:
    chosen = select_results({"shp-image-digest": "d" * 5000, "shp-image-size": "42"})
    assert chosen == {"shp-image-size": "42"}


def test_multibyte_values_are_measured_in_bytes() -> None:
    message = render_termination_message({"shp-error-message": "é" * 4000})
    assert _size(message) <= TERMINATION_MESSAGE_LIMIT
    assert len(message) > TERMINATION_MESSAGE_LIMIT // 2 - 100


def test_small_results_are_left_alone() -> None:
    values = {"shp-error-message": "short", "shp-image-size": "1"}
    assert select_results(values) == values


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(
    st.sampled_from([*PRIORITY, "shp-error-message", "shp-image-vulnerabilities", "x", "y"]),
    st.text(max_size=3000),
))
def test_message_is_always_valid_bounded_and_faithful(values: dict[str, str]) -> None:
    message = render_termination_message(values)
    assert _size(message) <= TERMINATION_MESSAGE_LIMIT
    parsed = parse_termination_message(message)
    assert set(parsed) <= set(values)
    for key, value in parsed.items():
        if key in ("shp-error-message", "shp-image-vulnerabilities"):
            assert value == values[key] or len(value) < len(values[key])
        else:
            assert value == values[key]
    untouched = json.dumps([{"key": k, "value": values[k], "type": 1} for k in sorted(values)],
                           separators=(",", ":"), ensure_ascii=False)
    if _size(untouched) <= TERMINATION_MESSAGE_LIMIT:
        assert parsed == values
        assert message == untouched


# --- parse_termination_message ---------------------------------------------------------------


def test_parse_round_trips() -> None:
    values = {"shp-image-digest": DIGEST, "shp-error-message": 'quote " and \n newline'}
    assert parse_termination_message(render_termination_message(values)) == values


def test_parse_reads_tekton_written_messages() -> None:
    text = ('[{"key":"shp-image-digest","value":"sha256:1","type":1},'
            '{"key":"StartedAt","value":"2024-01-01T00:00:00Z","type":3},'
            '{"key":"shp-image-size","value":"7"}]')
    assert parse_termination_message(text) == {"shp-image-digest": "sha256:1",
                                                "shp-image-size": "7"}


@pytest.mark.parametrize("garbage", [
    "", "null", "{}", '{"key":"a","value":"b"}', "[1, 2]", "not json", "[{]",
    '[{"key": 1, "value": "x"}]', '[{"key": "a", "value": 3}]', '[{"key": "", "value": "x"}]',
    "[" * 100_000, '"[]"',
])
def test_parse_tolerates_garbage(garbage: str) -> None:
    assert parse_termination_message(garbage) == {}


def test_parse_keeps_good_entries_next_to_bad_ones() -> None:
    text = '[null, {"key": "a", "value": "1"}, {"value": "2"}, "x"]'
    assert parse_termination_message(text) == {"a": "1"}


# --- small helpers ---------------------------------------------------------------------------


def test_write_result_creates_the_directory_and_writes_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "shp-image-size"
    write_result(str(path), "12")
    assert path.read_text() == "12"
    write_result(None, "ignored")  # no path requested: nothing to do


def test_strip_result_value() -> None:
    assert strip_result_value("a\n") == "a"
    assert strip_result_value("a\n\n") == "a\n"
    assert strip_result_value("a") == "a"
