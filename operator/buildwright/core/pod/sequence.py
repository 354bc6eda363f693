"""Steps in order: the `prepare` init container copies Tekton's entrypoint into the Pod, and
each step's command runs behind it with the flags that make it wait for the previous step's
post file and skip after a failure. `sequenced_step` reads those flags back (the kubelet
stand-in uses it to play the entrypoint's part)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildwright.core.contract import (
    ENTRYPOINT,
    ENTRYPOINT_DIR,
    ENTRYPOINT_IN_STEP_IMAGE,
    ERROR_RESULTS,
    PREPARE_CONTAINER,
    RUN_DIR,
    STEP_PREFIX,
    TERMINATION_PATH,
)
from buildwright.core.pod.containers import (
    PHASE_STRATEGY,
    GenerationError,
    RenderContext,
    shipwright_security_context,
)
from buildwright.core.pod.volumes import VOLUME_ENTRYPOINT, VOLUME_RUN, volume_mount


def post_file(index: int) -> str:
    return f"{RUN_DIR}/{index}/out"


def prepare_container(ctx: RenderContext) -> dict[str, Any]:
    """The init container that copies the entrypoint into the Pod. The binary copies itself
    (`/proc/self/exe`), so it works wherever the step image keeps it."""
    container: dict[str, Any] = {
        "name": PREPARE_CONTAINER,
        "image": ctx.inputs.step_image,
        "command": [ENTRYPOINT_IN_STEP_IMAGE, "cp", "/proc/self/exe", ENTRYPOINT],
        "securityContext": shipwright_security_context(ctx),
        "volumeMounts": [volume_mount(VOLUME_ENTRYPOINT, ENTRYPOINT_DIR)],
    }
    if ctx.inputs.step_image_pull_policy:
        container["imagePullPolicy"] = ctx.inputs.step_image_pull_policy
    return container


def sequence_steps(steps: list[dict[str, Any]], own_reporters: set[str]) -> None:
    """Put the entrypoint in front of each step's command, in place: step `i` waits for
    step `i-1`'s post file and writes its own. The original command and args follow `--`
    unchanged, so they reach the step's process as the same argv, never through a shell.
    Steps named in `own_reporters` write their termination message themselves."""
    for index, container in enumerate(steps):
        command = container.get("command") or []
        if not command:
            raise GenerationError(
                f'{PHASE_STRATEGY}step "{container["name"].removeprefix(STEP_PREFIX)}" has '
                "no command: buildwright starts each step through an entrypoint that runs the "
                "step's command, so the strategy must name it (an image's own entrypoint is "
                "not looked up)"
            )
        flags: list[str] = []
        if index > 0:
            flags += ["-wait_file", post_file(index - 1)]
        # `-termination_path` is left at the entrypoint's default, TERMINATION_PATH: every byte
        # of the Pod is paid again on each status patch. `-step_metadata_dir` is not optional:
        # without it the entrypoint creates its directories in the step's working directory.
        flags += [
            "-post_file", post_file(index), "-step_metadata_dir", f"{RUN_DIR}/{index}/status"
        ]  # fmt: skip
        if container["name"] not in own_reporters:
            flags += ["-results", ",".join(ERROR_RESULTS)]
        flags += ["-entrypoint", command[0], "--", *command[1:], *(container.get("args") or [])]
        container["command"] = [ENTRYPOINT]
        container["args"] = flags
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),
            volume_mount(VOLUME_ENTRYPOINT, ENTRYPOINT_DIR, read_only=True),
            volume_mount(VOLUME_RUN, RUN_DIR),
        ]
        container["terminationMessagePath"] = TERMINATION_PATH
        # Killed before the entrypoint could write (out of memory), the log tail tells why.
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"


@dataclass(frozen=True)
class SequencedStep:
    """What `sequence_steps` put in front of a step, read back from its container."""

    wait_file: str | None
    post_file: str | None
    termination_path: str | None
    results: tuple[str, ...]
    argv: tuple[str, ...]
    """The step's own command and args, as its process receives them."""


def sequenced_step(container: Mapping[str, Any]) -> SequencedStep | None:
    """The entrypoint's flags and the wrapped argv of a step container; None for a container
    that is not run through the entrypoint (an old Pod's init-container steps, `prepare`)."""
    if list(container.get("command") or []) != [ENTRYPOINT]:
        return None
    args = [str(arg) for arg in container.get("args") or []]
    if "--" not in args:
        return None
    split = args.index("--")
    flags, rest = args[:split], args[split + 1 :]
    values: dict[str, str] = {}
    for index in range(0, len(flags) - 1, 2):
        values[flags[index].lstrip("-")] = flags[index + 1]
    entrypoint = values.get("entrypoint")
    if entrypoint is None:
        return None
    results = tuple(name for name in values.get("results", "").split(",") if name)
    return SequencedStep(
        wait_file=values.get("wait_file"),
        post_file=values.get("post_file"),
        termination_path=values.get("termination_path"),
        results=results,
        argv=(entrypoint, *rest),
    )
