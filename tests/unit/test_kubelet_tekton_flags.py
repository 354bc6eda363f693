"""The kubelet stand-in reads the step flags of Tekton's own Pods as well as buildwright's."""

from __future__ import annotations

import threading
from typing import Any

from buildwright.core.pod import sequenced_step
from buildwright_localcluster.kubelet import Outcome, ScriptedExecutor, paired_entrypoint_flags

DOWNWARD = {"name": "tekton-internal-downward", "mountPath": "/tekton/downward"}


def tekton_step(name: str, flags: list[str], **extra: Any) -> dict[str, Any]:
    """A step container as Tekton's controller writes it (pkg/pod/entrypoint.go)."""
    return {
        "name": name,
        "command": ["/tekton/bin/entrypoint"],
        "args": [*flags, "-entrypoint", "/kaniko/executor", "--", "--dockerfile=Dockerfile"],
        **extra,
    }


def tekton_pod(containers: list[dict[str, Any]], ready: str | None) -> dict[str, Any]:
    annotations = {"tekton.dev/ready": ready} if ready is not None else {}
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "annotations": annotations},
        "spec": {
            "containers": containers,
            "volumes": [
                {
                    "name": "tekton-internal-downward",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "ready",
                                "fieldRef": {
                                    "fieldPath": "metadata.annotations['tekton.dev/ready']"
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }


FIRST = [
    "-wait_file", "/tekton/downward/ready", "-wait_file_content",
    "-post_file", "/tekton/run/0/out", "-termination_path", "/tekton/termination",
    "-step_metadata_dir", "/tekton/run/0/status", "-enable_spire",
    "-docker-config=push-secret", "-results", "shp-image-digest,shp-image-size",
]  # fmt: skip


def test_boolean_and_equals_flags_become_pairs() -> None:
    step = sequenced_step(paired_entrypoint_flags(tekton_step("step-build", FIRST)))
    assert step is not None
    assert step.wait_file == "/tekton/downward/ready"
    assert step.post_file == "/tekton/run/0/out"
    assert step.termination_path == "/tekton/termination"
    assert step.results == ("shp-image-digest", "shp-image-size")
    assert step.argv == ("/kaniko/executor", "--dockerfile=Dockerfile")


def test_step_args_after_the_separator_are_left_alone() -> None:
    container = tekton_step("step-build", ["-post_file", "/tekton/run/0/out"])
    container["args"] += ["-wait_file_content", "-x=y"]
    assert paired_entrypoint_flags(container)["args"][-2:] == ["-wait_file_content", "-x=y"]


def start_first_step(ready: str | None) -> tuple[ScriptedExecutor, Any, threading.Event]:
    executor = ScriptedExecutor(default_duration=0.0)
    container = tekton_step("step-build", FIRST, volumeMounts=[DOWNWARD])
    finished = threading.Event()
    digest = Outcome(duration=0.0, results={"shp-image-digest": "sha256:ab"})
    executor.script("ns", {"step-build": digest})
    run = executor.start(tekton_pod([container], ready), container, finished.set)
    return executor, run, finished


def test_a_set_ready_annotation_releases_the_first_step_and_results_are_reported() -> None:
    executor, run, finished = start_first_step("READY")
    try:
        assert finished.wait(5.0)
        outcome = run.result()
        assert outcome is not None and outcome.exit_code == 0
        assert '{"key":"shp-image-digest","value":"sha256:ab","type":1}' in outcome.message
    finally:
        executor.close()


def test_the_first_step_waits_until_the_annotation_is_set() -> None:
    executor, run, finished = start_first_step(None)
    try:
        # Long enough for a 0-second step that is not held back.
        assert not finished.wait(0.5)
        assert run.result() is None
        executor.observe(tekton_pod([], ""))  # set, but empty: a file without content
        executor.observe(tekton_pod([], "READY"))
        assert finished.wait(5.0)
        assert run.result() is not None
    finally:
        executor.close()
