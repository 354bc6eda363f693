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

from typing import Any

from buildwright.core import reasons
from buildwright.core.contract import (
    LOCAL_SOURCE_STEP,
    RESULTS_CONTAINER,
    RESULTS_DIR,
    TERMINATION_PATH,
)
from buildwright.core.pod.containers import (
    PHASE_PREPARE,
    GenerationError,
    PodInputs,
    RenderContext,
    aggregate,
    shipwright_container,
)
from buildwright.core.pod.metadata import (
    buildrun_owner_reference,
    pod_annotations,
    pod_labels,
    pod_name,
)
from buildwright.core.pod.output import image_processing_container
from buildwright.core.pod.sequence import prepare_container, sequence_steps
from buildwright.core.pod.source import source_container, source_secret_of
from buildwright.core.pod.strategy import (
    check_read_only_mounts,
    is_forbidden_env_name,
    strategy_container,
    strategy_volumes,
)
from buildwright.core.pod.volumes import (
    VOLUME_DOCKER_CONFIG,
    VOLUME_ENTRYPOINT,
    VOLUME_HOME,
    VOLUME_LOCAL_TMP,
    VOLUME_OUTPUT_DIRECTORY,
    VOLUME_RESULTS,
    VOLUME_RUN,
    VOLUME_SOURCE,
    VOLUME_TRIVY_CACHE,
    common_mounts,
    secret_volume_name,
    unique_volume_name,
)
from buildwright.core.reasons import Reason
from buildwright.core.resolve import (
    active_deadline_seconds,
    effective_build_spec_for,
    effective_timeout_seconds,
    resolve_parameters,
    system_parameters,
)

# --- source -----------------------------------------------------------------------------------


# --- strategy steps ---------------------------------------------------------------------------


# --- image processing -------------------------------------------------------------------------


# --- ordering the steps -----------------------------------------------------------------------


# --- the Pod ----------------------------------------------------------------------------------


def _render(inputs: PodInputs) -> dict[str, Any]:
    buildrun = inputs.buildrun
    spec = effective_build_spec_for(buildrun, inputs.build_spec)

    forbidden = [
        f'environment variable "{var.name}" is forbidden for security reasons'
        for var in buildrun.spec.env or []
        if is_forbidden_env_name(var.name, inputs.forbidden_env_names)
    ]
    if forbidden:
        raise GenerationError(PHASE_PREPARE + aggregate(forbidden))

    strategy_spec = inputs.strategy.spec
    resolved = resolve_parameters(
        strategy_spec.parameters, spec.param_values, system_parameters(spec)
    )
    if isinstance(resolved, reasons.Failure):
        raise GenerationError(resolved.message)

    push_secret = spec.output.push_secret or None
    docker_config_secret = push_secret or inputs.docker_config_secret
    security = strategy_spec.security_context
    ctx = RenderContext(
        inputs=inputs,
        spec=spec,
        params=resolved,
        plain={name: p.plain() for name, p in resolved.items()},
        expanded={name: p.expanded() for name, p in resolved.items()},
        strategy_uid_gid=(security.run_as_user, security.run_as_group) if security else None,
        docker_config=docker_config_secret is not None,
    )

    declared_volumes = strategy_volumes(ctx)
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
        *declared_volumes,
    }
    # Only the Build's own push secret is handed to image-processing, as upstream does.
    build_push_secret = inputs.build_spec.output.push_secret or None
    secret_volumes: dict[str, str] = {}
    for secret in (source_secret_of(spec), build_push_secret):
        if secret is not None and secret not in secret_volumes:
            name = unique_volume_name(secret_volume_name(secret), taken, secret)
            taken.add(name)
            secret_volumes[secret] = name

    steps: list[dict[str, Any]] = []
    own_reporters = {RESULTS_CONTAINER}
    source_step = source_container(ctx, secret_volumes)
    if source_step is not None:
        steps.append(source_step)
        own_reporters.add(source_step["name"])

    uses_output_directory = False
    for step in strategy_spec.steps:
        container, uses = strategy_container(ctx, step, declared_volumes)
        steps.append(container)
        uses_output_directory = uses_output_directory or uses
    check_read_only_mounts(declared_volumes, strategy_spec.steps)

    image_processing = image_processing_container(
        ctx,
        uses_output_directory,
        secret_volumes.get(build_push_secret) if build_push_secret else None,
    )
    if image_processing is not None:
        steps.append(image_processing)

    steps.append(
        shipwright_container(
            ctx,
            RESULTS_CONTAINER,
            ["results", "--results-dir", RESULTS_DIR, "--termination-log", TERMINATION_PATH],
            common_mounts(ctx, docker_config=False),
        )
    )
    sequence_steps(steps, own_reporters)

    volumes: list[dict[str, Any]] = [
        {"name": VOLUME_ENTRYPOINT, "emptyDir": {}},
        {"name": VOLUME_RUN, "emptyDir": {}},
        {"name": VOLUME_SOURCE, "emptyDir": {}},
        {"name": VOLUME_HOME, "emptyDir": {}},
        {"name": VOLUME_RESULTS, "emptyDir": {}},
    ]
    if uses_output_directory:
        volumes.append({"name": VOLUME_OUTPUT_DIRECTORY, "emptyDir": {}})
    volumes += declared_volumes.values()
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
    if source_step is not None and source_step["name"].endswith(LOCAL_SOURCE_STEP):
        volumes.append({"name": VOLUME_LOCAL_TMP, "emptyDir": {}})

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": inputs.service_account_name,
        "automountServiceAccountToken": False,
        "initContainers": [prepare_container(ctx)],
        "containers": steps,
        "volumes": volumes,
    }
    try:
        timeout = effective_timeout_seconds(inputs.build_spec, buildrun.spec)
    except ValueError as error:
        raise GenerationError(f"infrastructure configuration: {error}") from error
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
        "labels": pod_labels(inputs),
        "ownerReferences": [buildrun_owner_reference(buildrun)],
    }
    if buildrun.metadata.get("namespace"):
        metadata["namespace"] = buildrun.metadata["namespace"]
    annotations = pod_annotations(inputs.strategy)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def render_pod(inputs: PodInputs) -> dict[str, Any] | reasons.Failure:
    """The complete build Pod manifest for a validated BuildRun, or the
    TaskRunGenerationFailed failure that stops it."""
    try:
        return _render(inputs)
    except GenerationError as error:
        return reasons.Failure(Reason.TASKRUN_GENERATION_FAILED, str(error))


