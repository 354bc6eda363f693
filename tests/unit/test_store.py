"""The operator's object store: newest version wins, and what it hands out is a private copy."""

from __future__ import annotations

from typing import Any

from buildwright.core.cached import build_pod_for_status
from buildwright.state import Store


def body(name: str, version: str, uid: str = "u-1", namespace: str = "ns", **extra: Any) -> Any:
    meta = {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": version}
    return {"metadata": meta, **extra}


def test_a_stored_body_comes_back_equal_and_as_a_fresh_copy() -> None:
    store = Store()
    original = body("a", "5", status={"phase": "Running"})
    store.put(original)
    first = store.get("ns", "a")
    assert first == original and first is not original
    assert first is not None
    first["status"]["phase"] = "changed by a caller"
    assert store.get("ns", "a") == original


def test_an_older_version_never_replaces_a_newer_one() -> None:
    store = Store()
    store.put(body("a", "10", status={"phase": "Succeeded"}))
    store.put(body("a", "9", status={"phase": "Running"}))
    assert store.get("ns", "a") == body("a", "10", status={"phase": "Succeeded"})


def test_a_recreated_object_replaces_the_old_one_whatever_its_version() -> None:
    store = Store()
    store.put(body("a", "10"))
    store.put(body("a", "3", uid="u-2"))
    assert store.get("ns", "a") == body("a", "3", uid="u-2")


def test_the_keep_function_decides_what_is_stored() -> None:
    store = Store(build_pod_for_status)
    pod = body("p", "1", spec={"containers": [{"name": "c", "image": "i"}]})
    pod["metadata"]["managedFields"] = [{"manager": "m"}]
    store.put(pod)
    kept = store.get("ns", "p")
    assert kept is not None
    assert kept["spec"] == {"initContainers": [], "containers": [{"name": "c"}]}
    assert "managedFields" not in kept["metadata"]


def test_objects_of_a_namespace_and_dropping() -> None:
    store = Store()
    store.put(body("a", "1"))
    store.put(body("b", "1", namespace="other"))
    assert [b["metadata"]["name"] for b in store.in_namespace("ns")] == ["a"]
    store.drop("ns", "a")
    assert store.get("ns", "a") is None and len(store) == 1


def test_put_says_whether_what_is_kept_changed() -> None:
    store = Store(build_pod_for_status)
    pod = body("p", "1", spec={"containers": [{"name": "c"}]}, status={"phase": "Pending"})
    assert store.put(pod)  # new
    assert not store.put(pod)  # the same version again: the echo of our own write
    assert not store.put(body("p", "0", spec={"containers": [{"name": "c"}]}))  # older
    bound = body("p", "2", spec={"containers": [{"name": "c"}], "nodeName": "n"},
                 status={"phase": "Pending"})  # fmt: skip
    assert not store.put(bound)  # nothing kept changed: no decision reads nodeName
    assert store.get("ns", "p")["metadata"]["resourceVersion"] == "2"  # type: ignore[index]
    running = body("p", "3", spec={"containers": [{"name": "c"}]}, status={"phase": "Running"})
    assert store.put(running)
    assert store.put(body("p", "1", uid="u-2"))  # re-created: new whatever its version


def test_the_stored_version_comes_back_with_the_body() -> None:
    store = Store()
    store.put(body("a", "7", spec={"x": 1}))
    assert store.get("ns", "a") == body("a", "7", spec={"x": 1})
    assert store.in_namespace("ns") == [body("a", "7", spec={"x": 1})]
