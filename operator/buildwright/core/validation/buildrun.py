"""BuildRun checks before a Pod is rendered: the BuildRun's own fields, the Build it names
or embeds, the overrides it may make of a named Build, its platforms and the parameter values
merged from Build and BuildRun. They stop at the first failure, as upstream's do, and word a
few messages differently from the Build-level checks (upstream's wording kept)."""

from __future__ import annotations

from buildwright.api.v1beta1 import (
    BuildRun,
    BuildRunSpec,
    BuildSpec,
)
from buildwright.core import references
from buildwright.core.labels import (
    label_value_errors,
)
from buildwright.core.parameters import merge_param_values, validate_parameters
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import (
    AnyStrategy,
    BuildFacts,
    Check,
    first_failure,
    last_failure,
)
from buildwright.core.validation.env import (
    ForbiddenEnvSetting,
    env_failure,
    forbidden_env_failure,
    forbidden_env_names,
)
from buildwright.core.validation.output import validate_platforms
from buildwright.core.validation.scheduling import (
    node_selector_failures,
    toleration_failures,
    validate_node_selector,
    validate_runtime_class_name,
    validate_scheduler_name,
    validate_tolerations,
)
from buildwright.core.validation.source import source_mismatch, validate_secrets
from buildwright.core.validation.strategy import (
    step_resources_failure,
    validate_strategy,
    volumes_failure,
)


def _override_forbidden(field: str) -> Failure:
    return Failure(
        Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
        f"cannot use '{field}' override and 'buildSpec' simultaneously",
    )


def validate_buildrun_fields(spec: BuildRunSpec) -> Failure | None:
    """Field rules: exactly one of build.name / build.spec, no overrides with a spec."""
    build = spec.build
    # An empty name references nothing (and looking it up would list every Build).
    if build.spec is None and not build.name:
        return Failure(
            Reason.BUILDRUN_NO_REF_OR_SPEC,
            "no build referenced or specified, either 'buildRef' or 'buildSpec' has to be set",
        )
    if build.spec is None:
        return None
    if build.name:
        return Failure(
            Reason.BUILDRUN_AMBIGUOUS_BUILD,
            "fields 'buildRef' and 'buildSpec' are mutually exclusive",
        )
    if spec.output is not None:
        return _override_forbidden("output")
    if spec.param_values:
        return _override_forbidden("paramValues")
    if spec.env:
        return _override_forbidden("env")
    if spec.timeout is not None:
        return _override_forbidden("timeout")
    if build.spec.trigger is not None:
        return Failure(
            Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
            "cannot use 'triggers' override in the 'BuildRun', only allowed in the 'Build'",
        )
    if spec.node_selector:
        return _override_forbidden("nodeSelector")
    if spec.tolerations:
        return _override_forbidden("tolerations")
    if spec.scheduler_name is not None:
        return _override_forbidden("schedulerName")
    if spec.runtime_class_name is not None:
        return _override_forbidden("runtimeClassName")
    if spec.step_resources:
        return _override_forbidden("stepResources")
    return None


def validate_buildrun_request(
    buildrun: BuildRun, *, forbidden_env: ForbiddenEnvSetting = None
) -> Failure | None:
    """The BuildRun itself: its name, field combinations, forbidden names in its env."""
    name_errors = label_value_errors(str(buildrun.metadata.get("name") or ""))
    if name_errors:
        return Failure(Reason.BUILDRUN_NAME_INVALID, ", ".join(name_errors))
    fields = validate_buildrun_fields(buildrun.spec)
    if fields is not None:
        return fields
    invalid = references.invalid_pod_reference(references.pod_references(buildrun.spec))
    if invalid is not None:
        return invalid
    forbidden = forbidden_env_names(forbidden_env)
    for var in buildrun.spec.env or ():
        if var.name in forbidden:
            return forbidden_env_failure(var.name)
    return None


def validate_embedded_build(
    spec: BuildSpec,
    facts: BuildFacts,
    *,
    namespace: str,
) -> Failure | None:
    """An embedded `build.spec`: BuildRegistrationFailed with the validation message.

    Runs secrets, strategy, source, env, nodeSelector, tolerations and schedulerName (the
    source-url check has nothing to do: a transient Build has no annotations; its empty name is
    a valid label value; output, triggers and runtimeClassName are not checked, as upstream).
    As upstream, every validator runs and a later failure overwrites an earlier one, except
    that a source mismatch or an env failure ends the run at once — upstream requeues there
    forever, we report it.
    """
    last: Failure | None = last_failure(
        [
            validate_secrets(spec, facts.existing_secrets),
            validate_strategy(spec, namespace, facts.strategy, facts.extra_volume_sources),
            references.invalid_pod_reference(references.pod_references(spec)),
        ]
    )
    mismatch = source_mismatch(spec)
    if mismatch is not None:
        return Failure(Reason.BUILD_REGISTRATION_FAILED, mismatch)
    env = env_failure(spec.env, forbidden_env_names(facts.forbidden_env))
    if env is not None:
        return Failure(Reason.BUILD_REGISTRATION_FAILED, env.message)
    last = last_failure(
        [
            last,
            validate_node_selector(spec.node_selector),
            validate_tolerations(spec.tolerations),
            validate_scheduler_name(spec.scheduler_name),
        ]
    )
    if last is None:
        return None
    return Failure(Reason.BUILD_REGISTRATION_FAILED, last.message)


def validate_buildrun_overrides(
    spec: BuildRunSpec, strategy: AnyStrategy, extra_volume_sources: frozenset[str] = frozenset()
) -> Failure | None:
    """The BuildRun's own volumes, stepResources and scheduling fields.

    The first failure wins. Platforms are checked by `validate_buildrun_platforms`.
    """
    checks: list[Check] = [
        lambda: volumes_failure(strategy.spec.volumes, spec.volumes, extra_volume_sources),
        lambda: step_resources_failure(strategy, spec.step_resources),
        lambda: next(iter(node_selector_failures(spec.node_selector)), None),
        lambda: first_failure(
            next(iter(toleration_failures(toleration, buildrun=True)), None)
            for toleration in spec.tolerations or ()
        ),
        lambda: validate_scheduler_name(spec.scheduler_name),
        lambda: validate_runtime_class_name(spec.runtime_class_name),
    ]
    return first_failure(check() for check in checks)


def validate_buildrun_platforms(
    build_spec: BuildSpec, buildrun_spec: BuildRunSpec
) -> Failure | None:
    """Multi-arch preflight on the effective platforms (BuildRun's if non-empty, else the
    Build's) and the merged nodeSelector (BuildRun wins per key).

    Executor mode and node availability (ExecutorNotPipelineRun, NodePlatformNotFound) need
    cluster facts and stay with the shell.
    """
    platforms = build_spec.output.platforms
    if buildrun_spec.output is not None and buildrun_spec.output.platforms:
        platforms = buildrun_spec.output.platforms
    node_selector = {**(build_spec.node_selector or {}), **(buildrun_spec.node_selector or {})}
    return validate_platforms(platforms, node_selector)


def merged_parameter_failure(
    strategy: AnyStrategy, build_spec: BuildSpec, buildrun_spec: BuildRunSpec
) -> Failure | None:
    """Parameter validation of Build ∪ BuildRun paramValues (BuildRun wins by name), with
    missing required values flagged."""
    merged = merge_param_values(build_spec.param_values, buildrun_spec.param_values)
    return validate_parameters(strategy.spec.parameters, merged, check_missing=True)
