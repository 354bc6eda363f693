"""What a BuildRun actually runs: the effective Build spec and the strategy's parameters.

A BuildRun may override parts of its Build (output field by field, parameter values and
env by name, timeout, volumes, step resources, scheduling, a Local source). The result is
both the `status.buildSpec` snapshot and the input from which the Pod is rendered, so the two
can never disagree.

Parameter values are resolved here into the strings that get substituted into the steps. Two
forms exist for each value because Kubernetes itself expands `$(VAR)` and `$$` in a
container's command, args and env values but not in its image or workingDir: the `expanded`
form doubles every literal `$` so that after the kubelet's expansion the step receives
exactly the value the user wrote, while ConfigMap/Secret-backed values become a `$(SHP_…)`
reference to an env var that the kubelet fills in.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from buildwright.api.base import EnvVar, Toleration, Volume
from buildwright.api.v1beta1 import (
    BuildRun,
    BuildRunSpec,
    BuildSpec,
    Image,
    Parameter,
    ParamValue,
    SingleValue,
    Source,
    StepResourceOverride,
)
from buildwright.core import reasons
from buildwright.core.formats import parse_duration
from buildwright.core.reasons import Reason
from buildwright.core.triggers import revision_override

SOURCE_ROOT = "/workspace/source"
OUTPUT_DIRECTORY = "/workspace/output-image"

PARAM_SOURCE_ROOT = "shp-source-root"
PARAM_SOURCE_CONTEXT = "shp-source-context"
PARAM_OUTPUT_IMAGE = "shp-output-image"
PARAM_OUTPUT_INSECURE = "shp-output-insecure"
PARAM_OUTPUT_DIRECTORY = "shp-output-directory"

CONFIGMAP_ENV_PREFIX = "SHP_CONFIGMAP_PARAM_"
SECRET_ENV_PREFIX = "SHP_SECRET_PARAM_"
CONFIGMAP_PLACEHOLDER = "${CONFIGMAP_VALUE}"
SECRET_PLACEHOLDER = "${SECRET_VALUE}"
_ENV_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

PARAMETERS_PHASE = "metadata configuration: "

# ---------------------------------------------------------------------------------------------
# Effective Build spec

_Named = TypeVar("_Named", ParamValue, EnvVar, Volume, StepResourceOverride)


def _merge_by_name(
    base: Sequence[_Named] | None, overrides: Sequence[_Named] | None
) -> list[_Named] | None:
    """Base entries in their order, each replaced by the override of the same name; overrides
    naming nothing in base are appended."""
    if base is None and overrides is None:
        return None
    by_name = {item.name: item for item in overrides or ()}
    merged = [by_name.pop(item.name, item) for item in base or ()]
    merged.extend(item for item in overrides or () if item.name in by_name)
    return [item.model_copy(deep=True) for item in merged]


def _merge_maps(
    base: dict[str, str] | None, overrides: dict[str, str] | None
) -> dict[str, str] | None:
    if base is None and overrides is None:
        return None
    return {**(base or {}), **(overrides or {})}


def effective_output(build_output: Image, buildrun_output: Image | None) -> Image:
    """The Build's output with the BuildRun's output applied field by field."""
    if buildrun_output is None:
        return build_output.model_copy(deep=True)
    chosen = Image(
        image=buildrun_output.image,
        insecure=(
            buildrun_output.insecure
            if buildrun_output.insecure is not None
            else build_output.insecure
        ),
        push_secret=buildrun_output.push_secret or build_output.push_secret,
        annotations=_merge_maps(build_output.annotations, buildrun_output.annotations),
        labels=_merge_maps(build_output.labels, buildrun_output.labels),
        timestamp=(
            buildrun_output.timestamp
            if buildrun_output.timestamp is not None
            else build_output.timestamp
        ),
        vulnerability_scan=buildrun_output.vulnerability_scan or build_output.vulnerability_scan,
        platforms=buildrun_output.platforms or build_output.platforms,
    )
    return chosen.model_copy(deep=True)


def merge_tolerations(
    build: Sequence[Toleration] | None, buildrun: Sequence[Toleration] | None
) -> list[Toleration] | None:
    """The BuildRun's tolerations plus the Build's whose key the BuildRun does not use."""
    if build is None and buildrun is None:
        return None
    taken = {toleration.key for toleration in buildrun or ()}
    merged = list(buildrun or ()) + [t for t in build or () if t.key not in taken]
    return [toleration.model_copy(deep=True) for toleration in merged]


def effective_build_spec(
    build_spec: BuildSpec, buildrun_spec: BuildRunSpec, revision: str | None = None
) -> BuildSpec:
    """The Build spec with the BuildRun's overrides applied: what the run executes and what
    is recorded in `status.buildSpec`. `revision` is the commit a trigger asked for
    (`core.triggers.revision_override`); it replaces the Git source's revision."""
    spec = build_spec.model_copy(deep=True)
    run = buildrun_spec
    if revision and spec.source is not None and spec.source.git is not None:
        spec.source.git.revision = revision

    local = run.source
    if local is not None and local.type == "Local" and local.local is not None:
        context_dir = spec.source.context_dir if spec.source is not None else None
        spec.source = Source(
            type="Local", local=local.local.model_copy(deep=True), context_dir=context_dir
        )

    spec.param_values = _merge_by_name(spec.param_values, run.param_values)
    spec.output = effective_output(build_spec.output, run.output)
    if run.timeout is not None:
        spec.timeout = run.timeout
    spec.env = _merge_by_name(spec.env, run.env)
    spec.volumes = _merge_by_name(spec.volumes, run.volumes)
    spec.strategy.step_resources = _merge_by_name(spec.strategy.step_resources, run.step_resources)
    spec.node_selector = _merge_maps(spec.node_selector, run.node_selector)
    spec.tolerations = merge_tolerations(spec.tolerations, run.tolerations)
    if run.scheduler_name is not None:
        spec.scheduler_name = run.scheduler_name
    if run.runtime_class_name is not None:
        spec.runtime_class_name = run.runtime_class_name
    return spec


def effective_build_spec_for(buildrun: BuildRun, build_spec: BuildSpec) -> BuildSpec:
    """`effective_build_spec` of this BuildRun, with the commit its trigger asked for."""
    annotations = buildrun.metadata.get("annotations")
    return effective_build_spec(build_spec, buildrun.spec, revision_override(annotations))


def effective_timeout(build_spec: BuildSpec | None, buildrun_spec: BuildRunSpec) -> str | None:
    """The timeout duration string in force: BuildRun's, else the Build's, else none."""
    if buildrun_spec.timeout is not None:
        return buildrun_spec.timeout
    return build_spec.timeout if build_spec is not None else None


def effective_timeout_seconds(
    build_spec: BuildSpec | None, buildrun_spec: BuildRunSpec
) -> float | None:
    """The effective timeout in seconds, or None when none is set (a zero or negative
    duration means "no timeout", as in Tekton). Raises ValueError for a malformed duration.

    The one decision of a run's timeout: the Pod's deadline and the status both ask here."""
    timeout = effective_timeout(build_spec, buildrun_spec)
    if timeout is None:
        return None
    seconds = parse_duration(timeout)
    return seconds if seconds > 0 else None


def buildrun_timeout_seconds(buildrun: BuildRun) -> float | None:
    """`effective_timeout_seconds` of a BuildRun seen on its own, as its status is decided:
    the Build's spec is the embedded one, else the `status.buildSpec` snapshot. A malformed
    duration counts as none (the Pod was then never created: TaskRunGenerationFailed)."""
    build_spec = buildrun.spec.build.spec
    if build_spec is None and buildrun.status is not None:
        build_spec = buildrun.status.build_spec
    try:
        return effective_timeout_seconds(build_spec, buildrun.spec)
    except ValueError:
        return None


#: The largest `activeDeadlineSeconds` the API server accepts (2³¹−1 s, about 68 years).
MAX_ACTIVE_DEADLINE_SECONDS = 2**31 - 1


def active_deadline_seconds(timeout_seconds: float | None) -> int | None:
    """The Pod's activeDeadlineSeconds for a timeout: whole seconds, rounded up, at least 1,
    at most what the API server accepts (the operator enforces longer timeouts itself)."""
    if timeout_seconds is None:
        return None
    return min(MAX_ACTIVE_DEADLINE_SECONDS, max(1, math.ceil(timeout_seconds)))


# ---------------------------------------------------------------------------------------------
# Parameters


def kube_escape(text: str) -> str:
    """`text` such that Kubernetes' `$(VAR)`/`$$` expansion of command, args and env values
    yields `text` itself: every `$` is doubled."""
    return text.replace("$", "$$")


def source_context(spec: BuildSpec) -> str:
    """The build context directory: the source root joined with contextDir (Go's
    filepath.Join, which also cleans the path)."""
    context_dir = spec.source.context_dir if spec.source is not None else None
    if not context_dir:
        return SOURCE_ROOT
    return posixpath.normpath(posixpath.join(SOURCE_ROOT, context_dir))


def system_parameters(spec: BuildSpec) -> dict[str, str]:
    """Values of the `shp-*` parameters for an effective Build spec (docs/build-pod.md)."""
    return {
        PARAM_SOURCE_ROOT: SOURCE_ROOT,
        PARAM_SOURCE_CONTEXT: source_context(spec),
        PARAM_OUTPUT_IMAGE: spec.output.image,
        PARAM_OUTPUT_INSECURE: "true" if spec.output.insecure else "false",
        PARAM_OUTPUT_DIRECTORY: OUTPUT_DIRECTORY,
    }


@dataclass(frozen=True)
class EnvSource:
    """An env var that carries a ConfigMap or Secret key into the steps using a parameter."""

    env_name: str
    kind: Literal["configMap", "secret"]
    object_name: str
    key: str

    def to_env_var(self) -> dict[str, Any]:
        """The corev1.EnvVar (wire form)."""
        ref = "configMapKeyRef" if self.kind == "configMap" else "secretKeyRef"
        return {
            "name": self.env_name,
            "valueFrom": {ref: {"name": self.object_name, "key": self.key}},
        }


@dataclass(frozen=True)
class ResolvedValue:
    """One parameter value in the two forms substitution needs."""

    plain: str
    """As the user wrote it; for fields Kubernetes does not expand (image, workingDir)."""
    expanded: str
    """For command, args and env values: literal `$` doubled, env var references live."""


@dataclass(frozen=True)
class ResolvedParameter:
    """A strategy parameter with its value(s) for this run."""

    name: str
    is_array: bool
    values: tuple[ResolvedValue, ...]
    env_sources: tuple[EnvSource, ...] = ()

    def plain(self) -> str | list[str]:
        """The value for substitution into fields Kubernetes does not expand."""
        if self.is_array:
            return [value.plain for value in self.values]
        return self.values[0].plain

    def expanded(self) -> str | list[str]:
        """The value for substitution into command, args and env values."""
        if self.is_array:
            return [value.expanded for value in self.values]
        return self.values[0].expanded


def _literal(text: str) -> ResolvedValue:
    return ResolvedValue(plain=text, expanded=kube_escape(text))


def env_var_name(
    kind: Literal["configMap", "secret"], object_name: str, key: str, salt: int = 0
) -> str:
    """A stable name for the env var of a ConfigMap/Secret key: the prefix plus five
    characters of [A-Z0-9] derived from the object name and key, so rendering the same
    BuildRun twice yields the same Pod."""
    prefix = CONFIGMAP_ENV_PREFIX if kind == "configMap" else SECRET_ENV_PREFIX
    digest = hashlib.sha256(f"{kind}\0{object_name}\0{key}\0{salt}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    suffix = []
    for _ in range(5):
        number, index = divmod(number, len(_ENV_SUFFIX_CHARS))
        suffix.append(_ENV_SUFFIX_CHARS[index])
    return prefix + "".join(suffix)


class _EnvNames:
    """Hands out one env var name per distinct (kind, object, key), never twice."""

    def __init__(self) -> None:
        self._by_ref: dict[tuple[str, str, str], EnvSource] = {}
        self._used: set[str] = set()

    def source(self, kind: Literal["configMap", "secret"], object_name: str, key: str) -> EnvSource:
        ref = (kind, object_name, key)
        known = self._by_ref.get(ref)
        if known is not None:
            return known
        salt = 0
        name = env_var_name(kind, object_name, key)
        while name in self._used:
            salt += 1
            name = env_var_name(kind, object_name, key, salt)
        self._used.add(name)
        source = EnvSource(env_name=name, kind=kind, object_name=object_name, key=key)
        self._by_ref[ref] = source
        return source


def _from_object(source: EnvSource, template: str | None, placeholder: str) -> ResolvedValue:
    """A value read from a ConfigMap/Secret key, optionally inside a `format` template."""
    reference = f"$({source.env_name})"
    if template is None:
        return ResolvedValue(plain=reference, expanded=reference)
    parts = template.split(placeholder)
    return ResolvedValue(
        plain=reference.join(parts),
        expanded=reference.join(kube_escape(part) for part in parts),
    )


def _resolve_single(
    value: SingleValue, names: _EnvNames
) -> tuple[ResolvedValue, EnvSource | None] | None:
    if value.config_map_value is not None:
        ref = value.config_map_value
        source = names.source("configMap", ref.name, ref.key)
        return _from_object(source, ref.format, CONFIGMAP_PLACEHOLDER), source
    if value.secret_value is not None:
        ref = value.secret_value
        source = names.source("secret", ref.name, ref.key)
        return _from_object(source, ref.format, SECRET_PLACEHOLDER), source
    if value.value is not None:
        return _literal(value.value), None
    return None


def _no_value(name: str) -> reasons.Failure:
    return reasons.Failure(
        Reason.TASKRUN_GENERATION_FAILED,
        f"{PARAMETERS_PHASE}unexpected parameter without any value: {name}",
    )


def resolve_parameters(
    parameters: Sequence[Parameter] | None,
    param_values: Sequence[ParamValue] | None,
    system: dict[str, str],
) -> dict[str, ResolvedParameter] | reasons.Failure:
    """Every parameter a step may reference, with its value for this run.

    Strategy parameters take the paramValue of the same name, else their default(s); a
    paramValue without any value also falls back to the default. System parameters are
    added as literals. Values are assumed validated; a parameter left without
    any value still yields a clean TaskRunGenerationFailed instead of a broken Pod.
    """
    given = {value.name: value for value in param_values or ()}
    names = _EnvNames()
    resolved: dict[str, ResolvedParameter] = {}
    for parameter in parameters or ():
        supplied = given.get(parameter.name)
        if parameter.type == "array":
            if supplied is not None and supplied.values is not None:
                items: list[ResolvedValue] = []
                sources: list[EnvSource] = []
                for index, item in enumerate(supplied.values):
                    single = _resolve_single(item, names)
                    if single is None:
                        return _no_value(f"{parameter.name}[{index}]")
                    items.append(single[0])
                    if single[1] is not None and single[1] not in sources:
                        sources.append(single[1])
                resolved[parameter.name] = ResolvedParameter(
                    parameter.name, True, tuple(items), tuple(sources)
                )
            elif parameter.defaults is not None:
                resolved[parameter.name] = ResolvedParameter(
                    parameter.name, True, tuple(_literal(d) for d in parameter.defaults)
                )
            else:
                return _no_value(parameter.name)
        else:
            single = _resolve_single(supplied, names) if supplied is not None else None
            if single is not None:
                value, source = single
                resolved[parameter.name] = ResolvedParameter(
                    parameter.name, False, (value,), (source,) if source is not None else ()
                )
            elif parameter.default is not None:
                resolved[parameter.name] = ResolvedParameter(
                    parameter.name, False, (_literal(parameter.default),)
                )
            else:
                return _no_value(parameter.name)
    for name, text in system.items():
        resolved[name] = ResolvedParameter(name, False, (_literal(text),))
    return resolved
