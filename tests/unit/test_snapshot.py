"""status.buildSpec always fits into what etcd stores."""

from __future__ import annotations

import json

from buildwright.core.snapshot import SNAPSHOT_MAX_BYTES, bounded_snapshot


def spec(**extra: object) -> dict[str, object]:
    return {"strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": "registry.local/app"}, **extra}  # fmt: skip


def size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def test_a_small_snapshot_is_kept_whole() -> None:
    small = spec(paramValues=[{"name": "a", "value": "x" * 2000}])
    assert bounded_snapshot(small) == (small, [])


def test_a_megabyte_value_is_cut_and_the_cut_is_said() -> None:
    big = spec(paramValues=[{"name": "a", "value": "x" * 1_000_000}, {"name": "b", "value": "y"}])
    bounded, cut = bounded_snapshot(big)
    assert size(bounded) <= SNAPSHOT_MAX_BYTES
    assert cut == ["buildSpec.paramValues[0].value"]
    value = bounded["paramValues"][0]["value"]  # type: ignore[index]
    assert value.startswith("x" * 1024) and "998976 characters cut" in value
    assert bounded["paramValues"][1] == {"name": "b", "value": "y"}  # type: ignore[index]
    assert bounded["strategy"] == big["strategy"]


def test_many_values_are_cut_shorter_until_they_fit() -> None:
    many = spec(env=[{"name": f"V{i}", "value": "z" * 5000} for i in range(300)])
    bounded, cut = bounded_snapshot(many)
    assert size(bounded) <= SNAPSHOT_MAX_BYTES
    assert len(cut) == 300


def test_when_nothing_else_helps_only_the_essentials_are_kept() -> None:
    huge = spec(env=[{"name": f"V{i}", "value": "z"} for i in range(20_000)])
    bounded, cut = bounded_snapshot(huge)
    assert size(bounded) <= SNAPSHOT_MAX_BYTES
    assert set(bounded) == {"strategy", "output"}
    assert "buildSpec.env" in cut
