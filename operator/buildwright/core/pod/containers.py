"""What every container of the build Pod shares: the inputs of a render, its context, the
security context and mounts of Shipwright's steps, and the phase prefixes that
TaskRunGenerationFailed messages start with (as upstream's do)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildwright.api.base import EnvVar
from buildwright.api.v1beta1 import (
    BuildRun,
    BuildSpec,
    BuildStrategy,
    ClusterBuildStrategy,
)
from buildwright.core.contract import (
    HOME_DIR,
    RESULT_ERROR_MESSAGE,
    RESULT_ERROR_REASON,
    STEP_COMMAND,
    STEP_PREFIX,
    TERMINATION_PATH,
)
from buildwright.core.resolve import (
    ResolvedParameter,
)
from buildwright.core.substitute import (
    result_path,
)
from buildwright.core.validation.env import DEFAULT_FORBIDDEN_ENV_NAMES

DEFAULT_VULNERABILITY_COUNT_LIMIT = 50
FORBIDDEN_ENV_VAR_NAMES: tuple[str, ...] = DEFAULT_FORBIDDEN_ENV_NAMES
"""Env names that change how programs start (the dynamic loader's, the shell's); a trailing
`*` matches a prefix."""
SHIPWRIGHT_STEP_UID = 1000
SHIPWRIGHT_STEP_GID = 1000
PHASE_PREPARE = "preparing execution context: failed to merge environment variables: "
PHASE_STRATEGY = "build strategy: "
PHASE_OUTPUT = "output image: "


class GenerationError(Exception):
    """A TaskRunGenerationFailed condition; the argument is the complete message."""


@dataclass(frozen=True)
class RenderContext:
    """What every step renderer needs, computed once."""

    inputs: PodInputs
    spec: BuildSpec
    params: Mapping[str, ResolvedParameter]
    plain: Mapping[str, str | list[str]]
    expanded: Mapping[str, str | list[str]]
    strategy_uid_gid: tuple[int, int] | None
    docker_config: bool


def env_wire(env: EnvVar) -> dict[str, Any]:
    return env.to_wire()


def with_home(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(var.get("name") == "HOME" for var in env):
        return env
    return [*env, {"name": "HOME", "value": HOME_DIR}]


def shipwright_security_context(
    ctx: RenderContext, *, image_processing: bool = False
) -> dict[str, Any]:
    """Our own steps run with nothing they do not need; with a strategy securityContext they
    run as its user and group so files they share with the strategy steps stay usable."""
    context: dict[str, Any]
    if image_processing:
        # Writing the image tarball's directory and the registry credentials may need to
        # bypass file permissions of files the strategy (often root) created.
        context = {
            "runAsUser": 0,
            "runAsGroup": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["DAC_OVERRIDE"], "drop": ["ALL"]},
        }
    else:
        context = {
            "runAsUser": SHIPWRIGHT_STEP_UID,
            "runAsGroup": SHIPWRIGHT_STEP_GID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    if ctx.strategy_uid_gid is not None:
        uid, gid = ctx.strategy_uid_gid
        context["runAsUser"] = uid
        context["runAsGroup"] = gid
        if uid == 0:
            context.pop("runAsNonRoot", None)
        elif not image_processing:
            context["runAsNonRoot"] = True
    return context


def shipwright_container(
    ctx: RenderContext,
    step: str,
    args: list[str],
    mounts: list[dict[str, Any]],
    *,
    env: Sequence[dict[str, Any]] = (),
    image_processing: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": f"{STEP_PREFIX}{step}" if not step.startswith(STEP_PREFIX) else step,
        "image": ctx.inputs.step_image,
        "command": [STEP_COMMAND, *args[:1]],
        "args": args[1:],
        "env": with_home(list(env)),
        "securityContext": shipwright_security_context(ctx, image_processing=image_processing),
        "volumeMounts": mounts,
    }
    if ctx.inputs.step_image_pull_policy:
        container["imagePullPolicy"] = ctx.inputs.step_image_pull_policy
    return container


def error_result_args() -> list[str]:
    # A failing step makes the later ones skip, step-results among them: the source steps
    # report their error results themselves, as JSON in their own termination message.
    return [
        "--result-file-error-reason",
        result_path(RESULT_ERROR_REASON),
        "--result-file-error-message",
        result_path(RESULT_ERROR_MESSAGE),
        "--termination-log",
        TERMINATION_PATH,
    ]


def aggregate(errors: list[str]) -> str:
    """Join errors the way Kubernetes' error aggregate prints them."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


@dataclass(frozen=True)
class PodInputs:
    """Everything the Pod depends on, already read from the cluster by the shell."""

    buildrun: BuildRun
    build_name: str | None
    """Name of the referenced Build; None when the BuildRun embeds its Build spec."""
    build_generation: int | None
    build_spec: BuildSpec
    """The Build's own spec (or the embedded one), before BuildRun overrides."""
    strategy: BuildStrategy | ClusterBuildStrategy
    service_account_name: str
    docker_config_secret: str | None
    """First kubernetes.io/dockerconfigjson Secret linked to the service account; used for
    the strategy steps' registry credentials when no push secret is set."""
    step_image: str
    """Image of buildwright's own steps (source, image-processing, results)."""
    buildrun_creation_epoch: int | None = None
    """Seconds since the epoch of the BuildRun's creation (BuildTimestamp); when None it is
    read from the BuildRun's metadata.creationTimestamp."""
    step_image_pull_policy: str | None = None
    vulnerability_count_limit: int = DEFAULT_VULNERABILITY_COUNT_LIMIT
    git_url_rewrite: bool = False
    forbidden_env_names: tuple[str, ...] = FORBIDDEN_ENV_VAR_NAMES
