"""The build Pod of a BuildRun: one Pod, its steps as ordered containers, results last.

`render_pod` is the whole translation from (BuildRun, Build, strategy, service account) to a
Pod manifest (docs/build-pod.md describes the result): the source step, the strategy's steps
with parameters, env, resources, volumes and security context applied, the image-processing
step when the output must be pushed or mutated by us, and `step-results`, which reports every
result file in its termination message.

The steps are regular containers named `step-<name>`, so the Pod is `Running` while it builds
and `kubectl logs -f`, `shp build run --follow` and `shp build upload` work on it as they do
on a Shipwright build Pod. All of them start together; Tekton's entrypoint, copied into the
Pod by the `prepare` init container and placed in front of every step's command, makes each
step wait until the one before it has succeeded, and skip its command (exit 1, reason
`Skipped` in its termination message) once one has failed.

Every problem Shipwright reports as `TaskRunGenerationFailed` comes back as a `Failure` with
the same phase-prefixed message, so users read the text they would read upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from buildwright.api.base import EnvVar
from buildwright.api.v1beta1 import (
    API_VERSION,
    BuildRun,
    BuildSpec,
    BuildStrategy,
    ClusterBuildStrategy,
    Step,
    StrategyVolume,
    VulnerabilityScanOptions,
)
from buildwright.core import reasons
from buildwright.core.contract import (
    DOCKER_CONFIG_DIR,
    ENTRYPOINT,
    ENTRYPOINT_DIR,
    ENTRYPOINT_IN_STEP_IMAGE,
    ERROR_RESULTS,
    HOME_DIR,
    IMAGE_PROCESSING_STEP,
    LABEL_BUILD_GENERATION,
    LABEL_BUILD_NAME,
    LABEL_BUILDRUN_GENERATION,
    LABEL_BUILDRUN_NAME,
    LABEL_MANAGED_BY,
    LOCAL_SOURCE_STEP,
    LOCAL_TMP_DIR,
    MANAGED_BY,
    PREPARE_CONTAINER,
    PULL_SECRET_PATH,
    PUSH_SECRET_PATH,
    RESULT_BRANCH_NAME,
    RESULT_COMMIT_AUTHOR,
    RESULT_COMMIT_SHA,
    RESULT_ERROR_MESSAGE,
    RESULT_ERROR_REASON,
    RESULT_IMAGE_DIGEST,
    RESULT_IMAGE_SIZE,
    RESULT_IMAGE_VULNERABILITIES,
    RESULT_SOURCE_IMAGE_DIGEST,
    RESULT_SOURCE_TIMESTAMP,
    RESULTS_CONTAINER,
    RESULTS_DIR,
    RUN_DIR,
    SOURCE_SECRET_PATH,
    SOURCE_STEP,
    STEP_COMMAND,
    STEP_PREFIX,
    TERMINATION_PATH,
    TRIVY_CACHE_DIR,
)
from buildwright.core.reasons import Reason
from buildwright.core.resolve import (
    OUTPUT_DIRECTORY,
    PARAM_OUTPUT_DIRECTORY,
    SOURCE_ROOT,
    ResolvedParameter,
    active_deadline_seconds,
    effective_build_spec,
    effective_timeout_seconds,
    kube_escape,
    resolve_parameters,
    system_parameters,
)
from buildwright.core.substitute import (
    SubstitutionError,
    any_references_parameter,
    result_path,
    substitute_list,
    substitute_string,
)
from buildwright.core.validation import (
    DEFAULT_FORBIDDEN_ENV_NAMES,
    ForbiddenEnvNames,
    source_secret,
)

VOLUME_SOURCE = "shp-source"
VOLUME_HOME = "shp-home"
VOLUME_RESULTS = "shp-results"
VOLUME_OUTPUT_DIRECTORY = "shp-output-directory"
VOLUME_DOCKER_CONFIG = "shp-docker-config"
VOLUME_TRIVY_CACHE = "shp-trivy-cache-data"
VOLUME_LOCAL_TMP = "shp-local-tmp"
VOLUME_ENTRYPOINT = "tekton-internal-bin"
VOLUME_RUN = "tekton-internal-run"


DEFAULT_VULNERABILITY_COUNT_LIMIT = 50
DEFAULT_LOCAL_SOURCE_TIMEOUT = "60s"
SHIPWRIGHT_STEP_UID = 1000
SHIPWRIGHT_STEP_GID = 1000

FORBIDDEN_ENV_VAR_NAMES: tuple[str, ...] = DEFAULT_FORBIDDEN_ENV_NAMES
"""Env names that change how programs start (spec §7.7); a trailing `*` matches a prefix."""

_EXCLUDED_ANNOTATION_PREFIXES = (
    "clusterbuildstrategy.shipwright.io/",
    "buildstrategy.shipwright.io/",
    "build.shipwright.io/",
    "buildrun.shipwright.io/",
)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_READ_ONLY_VOLUME_TYPES = ("configMap", "secret", "downwardAPI", "projected")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_POD_NAME_LIMIT = 63
_POD_SUFFIX = "-pod"

_PHASE_PREPARE = "preparing execution context: failed to merge environment variables: "
_PHASE_STRATEGY = "build strategy: "
_PHASE_OUTPUT = "output image: "


def is_forbidden_env_name(name: str, patterns: Iterable[str] = FORBIDDEN_ENV_VAR_NAMES) -> bool:
    """Whether `name` is forbidden by `patterns` (exact names, or prefixes ending in `*`)."""
    return name in ForbiddenEnvNames.parse(patterns)


def pod_name(buildrun_name: str) -> str:
    """The build Pod's name: `<buildrun>-pod`, or for long names a cut name with a hash of
    the full one so that distinct BuildRuns never share a Pod and the name fits 63 chars."""
    name = f"{buildrun_name}{_POD_SUFFIX}"
    if len(name) <= _POD_NAME_LIMIT:
        return name
    digest = hashlib.sha256(buildrun_name.encode()).hexdigest()[:8]
    keep = _POD_NAME_LIMIT - len(_POD_SUFFIX) - len(digest) - 1
    return f"{buildrun_name[:keep]}-{digest}{_POD_SUFFIX}"


def secret_volume_name(secret_name: str) -> str:
    """Shipwright's volume name for a mounted Secret: `shp-<name>` with every run of
    characters outside [A-Za-z0-9-] turned into one `-`, cut to 63, one trailing `-` off."""
    name = "shp-" + re.sub(r"[^A-Za-z0-9-]+", "-", secret_name)
    name = name[:63]
    return name[:-1] if name.endswith("-") else name


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


class _GenerationError(Exception):
    """A TaskRunGenerationFailed condition; the argument is the complete message."""


@dataclass(frozen=True)
class _Context:
    """What every step renderer needs, computed once."""

    inputs: PodInputs
    spec: BuildSpec
    params: Mapping[str, ResolvedParameter]
    plain: Mapping[str, str | list[str]]
    expanded: Mapping[str, str | list[str]]
    strategy_uid_gid: tuple[int, int] | None
    docker_config: bool


def _env_wire(env: EnvVar) -> dict[str, Any]:
    return env.to_wire()


def _mount(name: str, path: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _common_mounts(ctx: _Context, *, docker_config: bool) -> list[dict[str, Any]]:
    """Mounts every step gets; parents before the directories mounted inside them."""
    mounts = [_mount(VOLUME_SOURCE, SOURCE_ROOT), _mount(VOLUME_HOME, HOME_DIR)]
    if docker_config and ctx.docker_config:
        mounts.append(_mount(VOLUME_DOCKER_CONFIG, DOCKER_CONFIG_DIR, read_only=True))
    mounts.append(_mount(VOLUME_RESULTS, RESULTS_DIR))
    return mounts


def _with_home(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(var.get("name") == "HOME" for var in env):
        return env
    return [*env, {"name": "HOME", "value": HOME_DIR}]


def _shipwright_security_context(
    ctx: _Context, *, image_processing: bool = False
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


def _shipwright_container(
    ctx: _Context,
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
        "env": _with_home(list(env)),
        "securityContext": _shipwright_security_context(ctx, image_processing=image_processing),
        "volumeMounts": mounts,
    }
    if ctx.inputs.step_image_pull_policy:
        container["imagePullPolicy"] = ctx.inputs.step_image_pull_policy
    return container


# --- source -----------------------------------------------------------------------------------


def _error_result_args() -> list[str]:
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


def _source_container(ctx: _Context, secret_volumes: dict[str, str]) -> dict[str, Any] | None:
    source = ctx.spec.source
    if source is None:
        return None
    mounts = _common_mounts(ctx, docker_config=False)
    if source.type == "Local":
        timeout = (source.local.timeout if source.local else None) or DEFAULT_LOCAL_SOURCE_TIMEOUT
        args = [
            "waiter",
            "start",
            f"--lock-file={LOCAL_TMP_DIR}/waiter.lock",
            f"--timeout={kube_escape(timeout)}",
            *_error_result_args(),
        ]
        mounts.append(_mount(VOLUME_LOCAL_TMP, LOCAL_TMP_DIR))
        return _shipwright_container(ctx, LOCAL_SOURCE_STEP, args, mounts)
    if source.type == "OCI" and source.oci_artifact is not None:
        oci = source.oci_artifact
        args = [
            "bundle",
            "--image",
            kube_escape(oci.image),
            "--target",
            SOURCE_ROOT,
            "--result-file-image-digest",
            result_path(RESULT_SOURCE_IMAGE_DIGEST),
            "--result-file-source-timestamp",
            result_path(RESULT_SOURCE_TIMESTAMP),
            *_error_result_args(),
        ]
        if oci.pull_secret:
            args += ["--secret-path", PULL_SECRET_PATH]
            mounts.append(_mount(secret_volumes[oci.pull_secret], PULL_SECRET_PATH, True))
        if oci.prune == "AfterPull":
            args.append("--prune")
        return _shipwright_container(ctx, SOURCE_STEP, args, mounts)
    if source.type == "Git" and source.git is not None:
        git = source.git
        args = [
            "git-source",
            "--url",
            kube_escape(git.url),
            "--target",
            SOURCE_ROOT,
            "--result-file-commit-sha",
            result_path(RESULT_COMMIT_SHA),
            "--result-file-commit-author",
            result_path(RESULT_COMMIT_AUTHOR),
            "--result-file-branch-name",
            result_path(RESULT_BRANCH_NAME),
            "--result-file-source-timestamp",
            result_path(RESULT_SOURCE_TIMESTAMP),
            *_error_result_args(),
        ]
        if git.revision:
            args += ["--revision", kube_escape(git.revision)]
        if git.depth is not None and git.depth >= 0:
            args += ["--depth", str(git.depth)]
        if ctx.inputs.git_url_rewrite:
            args.append("--git-url-rewrite")
        if git.clone_secret:
            args += ["--secret-path", SOURCE_SECRET_PATH]
            mounts.append(_mount(secret_volumes[git.clone_secret], SOURCE_SECRET_PATH, True))
        return _shipwright_container(ctx, SOURCE_STEP, args, mounts)
    # A source whose type names no matching field (validated away upstream): nothing to fetch.
    return None


def _source_secret(spec: BuildSpec) -> str | None:
    return source_secret(spec) or None


def _has_source_timestamp(spec: BuildSpec) -> bool:
    source = spec.source
    return source is not None and (
        (source.type == "Git" and source.git is not None)
        or (source.type == "OCI" and source.oci_artifact is not None)
    )


# --- strategy steps ---------------------------------------------------------------------------


def _aggregate(errors: list[str]) -> str:
    """Join errors the way Kubernetes' error aggregate prints them."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _step_env(ctx: _Context, step: Step) -> list[dict[str, Any]]:
    """Strategy env followed by the Build/BuildRun env; clashes and forbidden names fail."""
    forbidden = ctx.inputs.forbidden_env_names
    own = step.env or []
    for var in own:
        if is_forbidden_env_name(var.name, forbidden):
            raise _GenerationError(
                f'{_PHASE_STRATEGY}BuildStrategy step "{step.name}" defines forbidden '
                f'environment variable "{var.name}"'
            )
    own_names = {var.name for var in own}
    errors: list[str] = []
    added: list[EnvVar] = []
    for var in ctx.spec.env or []:
        if is_forbidden_env_name(var.name, forbidden):
            errors.append(f'environment variable "{var.name}" is forbidden for security reasons')
        elif var.name in own_names:
            errors.append(f'environment variable "{var.name}" already exists')
        else:
            added.append(var)
    if errors:
        raise _GenerationError(
            f"{_PHASE_STRATEGY}error(s) occurred merging environment variables into "
            f'BuildStrategy "{ctx.spec.strategy.name}" steps: {_aggregate(errors)}'
        )
    return [_env_wire(var) for var in [*own, *added]]


def _reference_texts(step: Step, env: Sequence[dict[str, Any]]) -> list[str]:
    """The fields in which Shipwright looks for parameter references."""
    texts = [*(step.command or []), *(step.args or [])]
    texts += [var["value"] for var in env if isinstance(var.get("value"), str)]
    return texts


def _resources(ctx: _Context, step: Step) -> dict[str, Any] | None:
    for override in ctx.spec.strategy.step_resources or []:
        if override.name == step.name:
            return override.resources.to_wire()
    return step.resources.to_wire() if step.resources is not None else None


def _strategy_container(
    ctx: _Context, step: Step, volumes: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The container of one strategy step, and whether it uses the output directory."""
    env = _step_env(ctx, step)
    texts = _reference_texts(step, env)

    # ConfigMap/Secret-backed values reach the step as env vars placed first, so that env
    # values after them may refer to them too.
    injected: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, parameter in ctx.params.items():
        if parameter.env_sources and any_references_parameter(texts, name):
            for source in parameter.env_sources:
                if source.env_name not in seen:
                    seen.add(source.env_name)
                    injected.append(source.to_env_var())

    uses_output_directory = any_references_parameter(texts, PARAM_OUTPUT_DIRECTORY)
    try:
        container: dict[str, Any] = {"name": f"{STEP_PREFIX}{step.name}"}
        if step.image is not None:
            container["image"] = substitute_string(step.image, ctx.plain)
        if step.command is not None:
            container["command"] = substitute_list(step.command, ctx.expanded)
        if step.args is not None:
            container["args"] = substitute_list(step.args, ctx.expanded)
        if step.working_dir is not None:
            container["workingDir"] = substitute_string(step.working_dir, ctx.plain)
        rendered_env = []
        for var in env:
            if isinstance(var.get("value"), str):
                var = {**var, "value": substitute_string(var["value"], ctx.expanded)}
            rendered_env.append(var)
    except SubstitutionError as error:
        raise _GenerationError(f'{_PHASE_STRATEGY}step "{step.name}": {error}') from error
    container["env"] = _with_home([*injected, *rendered_env])

    resources = _resources(ctx, step)
    if resources:
        container["resources"] = resources
    if step.image_pull_policy:
        container["imagePullPolicy"] = step.image_pull_policy

    security = dict(step.security_context or {})
    if ctx.strategy_uid_gid is not None:
        security.setdefault("runAsUser", ctx.strategy_uid_gid[0])
        security.setdefault("runAsGroup", ctx.strategy_uid_gid[1])
    if security:
        container["securityContext"] = security

    mounts = _common_mounts(ctx, docker_config=True)
    if uses_output_directory:
        mounts.append(_mount(VOLUME_OUTPUT_DIRECTORY, OUTPUT_DIRECTORY))
    for mount in step.volume_mounts or []:
        if mount.name not in volumes:
            raise _GenerationError(
                f'{_PHASE_STRATEGY}volume for the Volume Mount "{mount.name}" is not found'
            )
        mounts.append(mount.to_wire())
    container["volumeMounts"] = mounts
    return container, uses_output_directory


def _strategy_volumes(ctx: _Context) -> dict[str, dict[str, Any]]:
    """Strategy volumes with overridable ones replaced by the Build's, then the BuildRun's
    (both already merged into the effective spec)."""
    overrides = {volume.name: volume for volume in ctx.spec.volumes or []}
    volumes: dict[str, dict[str, Any]] = {}
    for volume in ctx.inputs.strategy.spec.volumes or []:
        override = overrides.get(volume.name)
        if override is not None and volume.overridable:
            volumes[volume.name] = override.to_wire()
        else:
            volumes[volume.name] = _strategy_volume_wire(volume)
    return volumes


def _strategy_volume_wire(volume: StrategyVolume) -> dict[str, Any]:
    wire = volume.to_wire()
    wire.pop("overridable", None)
    wire.pop("description", None)
    return wire


def _check_read_only_mounts(volumes: Mapping[str, dict[str, Any]], steps: Sequence[Step]) -> None:
    writable = {
        mount.name for step in steps for mount in step.volume_mounts or [] if not mount.read_only
    }
    for name, volume in volumes.items():
        if name in writable and any(kind in volume for kind in _READ_ONLY_VOLUME_TYPES):
            raise _GenerationError(f'{_PHASE_STRATEGY}volume mount "{name}" must be read only')


# --- image processing -------------------------------------------------------------------------


def _vulnerability_settings(options: VulnerabilityScanOptions) -> str:
    """The scan settings as compact JSON with unset and false fields left out."""
    settings: dict[str, Any] = {"enabled": True}
    if options.fail_on_finding:
        settings["failOnFinding"] = True
    if options.ignore is not None:
        ignore: dict[str, Any] = {}
        if options.ignore.id:
            ignore["id"] = list(options.ignore.id)
        if options.ignore.severity:
            ignore["severity"] = options.ignore.severity
        if options.ignore.unfixed:
            ignore["unfixed"] = True
        settings["ignore"] = ignore
    return json.dumps(settings, separators=(",", ":"))


def _creation_epoch(inputs: PodInputs) -> int:
    if inputs.buildrun_creation_epoch is not None:
        return inputs.buildrun_creation_epoch
    created = inputs.buildrun.metadata.get("creationTimestamp")
    if not isinstance(created, str):
        raise _GenerationError(
            f"{_PHASE_OUTPUT}cannot use BuildTimestamp setting, because the BuildRun has no "
            "creation timestamp"
        )
    return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())


def _timestamp_args(ctx: _Context) -> list[str]:
    timestamp = ctx.spec.output.timestamp
    if timestamp is None:
        return []
    if timestamp == "Zero":
        return ["--image-timestamp", "0"]
    if timestamp == "SourceTimestamp":
        if not _has_source_timestamp(ctx.spec):
            raise _GenerationError(
                f"{_PHASE_OUTPUT}cannot use SourceTimestamp setting, because there is no "
                "source timestamp available for this source"
            )
        return ["--image-timestamp-file", result_path(RESULT_SOURCE_TIMESTAMP)]
    if timestamp == "BuildTimestamp":
        return ["--image-timestamp", str(_creation_epoch(ctx.inputs))]
    if _INTEGER.fullmatch(timestamp) is None or not -(2**63) <= int(timestamp) < 2**63:
        raise _GenerationError(
            f"{_PHASE_OUTPUT}cannot parse output timestamp {timestamp} as a number, must be "
            "Zero, SourceTimestamp, BuildTimestamp, or a an integer"
        )
    return ["--image-timestamp", timestamp]


def _image_processing_container(
    ctx: _Context, uses_output_directory: bool, push_secret_volume: str | None
) -> dict[str, Any] | None:
    output = ctx.spec.output
    args: list[str] = []
    if uses_output_directory:
        args += ["--push", OUTPUT_DIRECTORY]
    for key, value in sorted((output.annotations or {}).items()):
        args += ["--annotation", kube_escape(f"{key}={value}")]
    for key, value in sorted((output.labels or {}).items()):
        args += ["--label", kube_escape(f"{key}={value}")]
    scan = output.vulnerability_scan
    if scan is not None and scan.enabled:
        args += ["--vuln-settings", kube_escape(_vulnerability_settings(scan))]
        if ctx.inputs.vulnerability_count_limit > 0:
            args += ["--vuln-count-limit", str(ctx.inputs.vulnerability_count_limit)]
    args += _timestamp_args(ctx)
    if not args:
        return None
    args += [
        "--image",
        kube_escape(output.image),
        f"--insecure={'true' if output.insecure else 'false'}",
        "--result-file-image-digest",
        result_path(RESULT_IMAGE_DIGEST),
        "--result-file-image-size",
        result_path(RESULT_IMAGE_SIZE),
        "--result-file-image-vulnerabilities",
        result_path(RESULT_IMAGE_VULNERABILITIES),
    ]
    mounts = _common_mounts(ctx, docker_config=True)
    if uses_output_directory:
        mounts.append(_mount(VOLUME_OUTPUT_DIRECTORY, OUTPUT_DIRECTORY, read_only=True))
    if push_secret_volume is not None:
        args += ["--secret-path", PUSH_SECRET_PATH]
        mounts.append(_mount(push_secret_volume, PUSH_SECRET_PATH, read_only=True))
    mounts.append(_mount(VOLUME_TRIVY_CACHE, TRIVY_CACHE_DIR))
    return _shipwright_container(
        ctx,
        IMAGE_PROCESSING_STEP,
        [IMAGE_PROCESSING_STEP, *args],
        mounts,
        env=[{"name": "TRIVY_CACHE_DIR", "value": TRIVY_CACHE_DIR}],
        image_processing=True,
    )


# --- ordering the steps -----------------------------------------------------------------------

def _post_file(index: int) -> str:
    return f"{RUN_DIR}/{index}/out"


def _prepare_container(ctx: _Context) -> dict[str, Any]:
    """The init container that copies the entrypoint into the Pod. The binary copies itself
    (`/proc/self/exe`), so it works wherever the step image keeps it."""
    container: dict[str, Any] = {
        "name": PREPARE_CONTAINER,
        "image": ctx.inputs.step_image,
        "command": [ENTRYPOINT_IN_STEP_IMAGE, "cp", "/proc/self/exe", ENTRYPOINT],
        "securityContext": _shipwright_security_context(ctx),
        "volumeMounts": [_mount(VOLUME_ENTRYPOINT, ENTRYPOINT_DIR)],
    }
    if ctx.inputs.step_image_pull_policy:
        container["imagePullPolicy"] = ctx.inputs.step_image_pull_policy
    return container


def _sequence(steps: list[dict[str, Any]], own_reporters: set[str]) -> None:
    """Put the entrypoint in front of each step's command, in place: step `i` waits for
    step `i-1`'s post file and writes its own. The original command and args follow `--`
    unchanged, so they reach the step's process as the same argv, never through a shell.
    Steps named in `own_reporters` write their termination message themselves."""
    for index, container in enumerate(steps):
        command = container.get("command") or []
        if not command:
            raise _GenerationError(
                f'{_PHASE_STRATEGY}step "{container["name"].removeprefix(STEP_PREFIX)}" has '
                "no command: buildwright starts each step through an entrypoint that runs the "
                "step's command, so the strategy must name it (an image's own entrypoint is "
                "not looked up)"
            )
        flags: list[str] = []
        if index > 0:
            flags += ["-wait_file", _post_file(index - 1)]
        # `-termination_path` is left at the entrypoint's default, TERMINATION_PATH: every byte
        # of the Pod is paid again on each status patch. `-step_metadata_dir` is not optional:
        # without it the entrypoint creates its directories in the step's working directory.
        flags += [
            "-post_file", _post_file(index), "-step_metadata_dir", f"{RUN_DIR}/{index}/status"
        ]  # fmt: skip
        if container["name"] not in own_reporters:
            flags += ["-results", ",".join(ERROR_RESULTS)]
        flags += ["-entrypoint", command[0], "--", *command[1:], *(container.get("args") or [])]
        container["command"] = [ENTRYPOINT]
        container["args"] = flags
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),
            _mount(VOLUME_ENTRYPOINT, ENTRYPOINT_DIR, read_only=True),
            _mount(VOLUME_RUN, RUN_DIR),
        ]
        container["terminationMessagePath"] = TERMINATION_PATH
        # Killed before the entrypoint could write (out of memory), the log tail tells why.
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"


@dataclass(frozen=True)
class SequencedStep:
    """What `_sequence` put in front of a step, read back from its container."""

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


# --- the Pod ----------------------------------------------------------------------------------


def _labels(inputs: PodInputs) -> dict[str, str]:
    metadata = inputs.buildrun.metadata
    labels = {LABEL_BUILDRUN_NAME: str(metadata.get("name", ""))}
    if metadata.get("generation") is not None:
        labels[LABEL_BUILDRUN_GENERATION] = str(metadata["generation"])
    if inputs.build_name is not None:
        labels[LABEL_BUILD_NAME] = inputs.build_name
        if inputs.build_generation is not None:
            labels[LABEL_BUILD_GENERATION] = str(inputs.build_generation)
    strategy = inputs.strategy
    domain = (
        "clusterbuildstrategy.shipwright.io"
        if strategy.kind == "ClusterBuildStrategy"
        else "buildstrategy.shipwright.io"
    )
    labels[f"{domain}/name"] = str(strategy.metadata.get("name", ""))
    if strategy.metadata.get("generation") is not None:
        labels[f"{domain}/generation"] = str(strategy.metadata["generation"])
    labels[LABEL_MANAGED_BY] = MANAGED_BY
    return labels


def _annotations(strategy: BuildStrategy | ClusterBuildStrategy) -> dict[str, str]:
    annotations = strategy.metadata.get("annotations") or {}
    return {
        str(key): str(value)
        for key, value in annotations.items()
        if key != _LAST_APPLIED and not str(key).startswith(_EXCLUDED_ANNOTATION_PREFIXES)
    }


def buildrun_owner_reference(buildrun: BuildRun) -> dict[str, Any]:
    """The controller reference from what a BuildRun creates (its Pod, its generated
    ServiceAccount) back to the BuildRun, so both go with it."""
    reference: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "BuildRun",
        "name": buildrun.metadata.get("name", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if buildrun.metadata.get("uid"):
        reference["uid"] = buildrun.metadata["uid"]
    return reference


def _unique_volume_name(wanted: str, taken: set[str], secret_name: str) -> str:
    """The secret's volume name, or a hashed variant when it would clash with another."""
    if wanted not in taken:
        return wanted
    digest = hashlib.sha256(secret_name.encode()).hexdigest()[:8]
    return f"{wanted[:54].rstrip('-')}-{digest}"


def _render(inputs: PodInputs) -> dict[str, Any]:
    buildrun = inputs.buildrun
    spec = effective_build_spec(inputs.build_spec, buildrun.spec)

    forbidden = [
        f'environment variable "{var.name}" is forbidden for security reasons'
        for var in buildrun.spec.env or []
        if is_forbidden_env_name(var.name, inputs.forbidden_env_names)
    ]
    if forbidden:
        raise _GenerationError(_PHASE_PREPARE + _aggregate(forbidden))

    strategy_spec = inputs.strategy.spec
    resolved = resolve_parameters(
        strategy_spec.parameters, spec.param_values, system_parameters(spec)
    )
    if isinstance(resolved, reasons.Failure):
        raise _GenerationError(resolved.message)

    push_secret = spec.output.push_secret or None
    docker_config_secret = push_secret or inputs.docker_config_secret
    security = strategy_spec.security_context
    ctx = _Context(
        inputs=inputs,
        spec=spec,
        params=resolved,
        plain={name: p.plain() for name, p in resolved.items()},
        expanded={name: p.expanded() for name, p in resolved.items()},
        strategy_uid_gid=(security.run_as_user, security.run_as_group) if security else None,
        docker_config=docker_config_secret is not None,
    )

    strategy_volumes = _strategy_volumes(ctx)
    taken = {
        VOLUME_ENTRYPOINT,
        VOLUME_RUN,
        VOLUME_SOURCE,
        VOLUME_HOME,
        VOLUME_RESULTS,
        VOLUME_OUTPUT_DIRECTORY,
        VOLUME_DOCKER_CONFIG,
        VOLUME_TRIVY_CACHE,
        VOLUME_LOCAL_TMP,
        *strategy_volumes,
    }
    # Only the Build's own push secret is handed to image-processing (spec §7.3).
    build_push_secret = inputs.build_spec.output.push_secret or None
    secret_volumes: dict[str, str] = {}
    for secret in (_source_secret(spec), build_push_secret):
        if secret is not None and secret not in secret_volumes:
            name = _unique_volume_name(secret_volume_name(secret), taken, secret)
            taken.add(name)
            secret_volumes[secret] = name

    steps: list[dict[str, Any]] = []
    own_reporters = {RESULTS_CONTAINER}
    source_container = _source_container(ctx, secret_volumes)
    if source_container is not None:
        steps.append(source_container)
        own_reporters.add(source_container["name"])

    uses_output_directory = False
    for step in strategy_spec.steps:
        container, uses = _strategy_container(ctx, step, strategy_volumes)
        steps.append(container)
        uses_output_directory = uses_output_directory or uses
    _check_read_only_mounts(strategy_volumes, strategy_spec.steps)

    image_processing = _image_processing_container(
        ctx,
        uses_output_directory,
        secret_volumes.get(build_push_secret) if build_push_secret else None,
    )
    if image_processing is not None:
        steps.append(image_processing)

    steps.append(
        _shipwright_container(
            ctx,
            RESULTS_CONTAINER,
            ["results", "--results-dir", RESULTS_DIR, "--termination-log", TERMINATION_PATH],
            _common_mounts(ctx, docker_config=False),
        )
    )
    _sequence(steps, own_reporters)

    volumes: list[dict[str, Any]] = [
        {"name": VOLUME_ENTRYPOINT, "emptyDir": {}},
        {"name": VOLUME_RUN, "emptyDir": {}},
        {"name": VOLUME_SOURCE, "emptyDir": {}},
        {"name": VOLUME_HOME, "emptyDir": {}},
        {"name": VOLUME_RESULTS, "emptyDir": {}},
    ]
    if uses_output_directory:
        volumes.append({"name": VOLUME_OUTPUT_DIRECTORY, "emptyDir": {}})
    volumes += strategy_volumes.values()
    used_secrets = {
        name
        for container in steps
        for mount in container["volumeMounts"]
        for name in [mount["name"]]
        if name in secret_volumes.values()
    }
    for secret, name in secret_volumes.items():
        if name in used_secrets:
            volumes.append({"name": name, "secret": {"secretName": secret, "defaultMode": 0o444}})
    if docker_config_secret is not None:
        volumes.append(
            {
                "name": VOLUME_DOCKER_CONFIG,
                "secret": {
                    "secretName": docker_config_secret,
                    "defaultMode": 0o444,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                    # A push secret of another type then fails the push with a clear
                    # authentication error instead of leaving the Pod stuck creating.
                    "optional": True,
                },
            }
        )
    if image_processing is not None:
        volumes.append({"name": VOLUME_TRIVY_CACHE, "emptyDir": {}})
    if source_container is not None and source_container["name"].endswith(LOCAL_SOURCE_STEP):
        volumes.append({"name": VOLUME_LOCAL_TMP, "emptyDir": {}})

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": inputs.service_account_name,
        "automountServiceAccountToken": False,
        "initContainers": [_prepare_container(ctx)],
        "containers": steps,
        "volumes": volumes,
    }
    try:
        timeout = effective_timeout_seconds(inputs.build_spec, buildrun.spec)
    except ValueError as error:
        raise _GenerationError(f"infrastructure configuration: {error}") from error
    deadline = active_deadline_seconds(timeout)
    if deadline is not None:
        pod_spec["activeDeadlineSeconds"] = deadline
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        tolerations = []
        for toleration in spec.tolerations:
            wire = toleration.to_wire()
            wire.setdefault("effect", "NoSchedule")
            if not wire["effect"]:
                wire["effect"] = "NoSchedule"
            tolerations.append(wire)
        pod_spec["tolerations"] = tolerations
    if spec.scheduler_name:
        pod_spec["schedulerName"] = spec.scheduler_name
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name

    metadata: dict[str, Any] = {
        "name": pod_name(str(buildrun.metadata.get("name", ""))),
        "labels": _labels(inputs),
        "ownerReferences": [buildrun_owner_reference(buildrun)],
    }
    if buildrun.metadata.get("namespace"):
        metadata["namespace"] = buildrun.metadata["namespace"]
    annotations = _annotations(inputs.strategy)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def render_pod(inputs: PodInputs) -> dict[str, Any] | reasons.Failure:
    """The complete build Pod manifest for a validated BuildRun, or the
    TaskRunGenerationFailed failure that stops it (spec §3.4)."""
    try:
        return _render(inputs)
    except _GenerationError as error:
        return reasons.Failure(Reason.TASKRUN_GENERATION_FAILED, str(error))


def required_volume_objects(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The Secrets and ConfigMaps a rendered Pod mounts without `optional: true`, as
    ("secrets" | "configmaps", name) in volume order: the shell checks they exist before it
    creates the Pod (VolumeDoesNotExist, spec §7.1 step 13) rather than leave it stuck."""
    wanted: list[tuple[str, str]] = []

    def add(kind: str, source: dict[str, Any], name_key: str) -> None:
        name = source.get(name_key, "")
        if not source.get("optional", False) and (kind, name) not in wanted:
            wanted.append((kind, name))

    for volume in manifest.get("spec", {}).get("volumes", []):
        if "secret" in volume:
            add("secrets", volume["secret"], "secretName")
        if "configMap" in volume:
            add("configmaps", volume["configMap"], "name")
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                add("secrets", source["secret"], "name")
            if "configMap" in source:
                add("configmaps", source["configMap"], "name")
    return wanted


def generated_service_account(buildrun: BuildRun, push_secret: str | None) -> dict[str, Any]:
    """The ServiceAccount of `serviceAccount: .generate` (spec §7.8): named like the BuildRun,
    owned by it, no token automount, the push secret linked."""
    name = buildrun.metadata["name"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": buildrun.metadata["namespace"],
            "labels": {"buildrun.shipwright.io/name": name},
            "ownerReferences": [buildrun_owner_reference(buildrun)],
        },
        "automountServiceAccountToken": False,
        "secrets": [{"name": push_secret}] if push_secret else [],
    }
