"""Conversion of shipwright.io objects between v1alpha1 and v1beta1, field by field as
Shipwright's own conversion webhook maps them (https://shipwright.io/docs/build/).

The functions work on plain JSON dicts, exactly as the apiserver sends them in a
ConversionReview, so the webhook does not depend on the pydantic models.

How a conversion is organised
-----------------------------
Every spec/status is cut into *groups* of top-level keys that convert together (for example
the Build "source" group holds alpha `source` + `sources` and beta `source`). A group has a
forward function (alpha→beta) and a backward function (beta→alpha). Keys that belong to no
group are copied unchanged.

Lossless round trips
--------------------
Whatever a group's target version cannot express is kept in an annotation on the converted
object, as compact JSON:

``conversion.buildwright.io/v1alpha1-fields``
    on a **v1beta1** object: the v1alpha1 form of every group whose alpha content would not
    come back unchanged (e.g. `spec.strategy.apiVersion`, HTTP `sources`, `builder.credentials`,
    volume descriptions, the extra `corev1.Container` fields of `buildSteps`, `status.failedAt`
    when it differs from `failureDetails.location`).
``conversion.buildwright.io/v1beta1-fields``
    on a **v1alpha1** object: the v1beta1 form of every group v1alpha1 cannot express
    (e.g. `nodeSelector`, `tolerations`, `schedulerName`, `runtimeClassName`,
    `strategy.stepResources`, `output.vulnerabilityScan`/`platforms`, `git.depth`, BuildRun
    `output.insecure`/`timestamp`, `executor.kind` other than TaskRun).

The annotation value maps a section (`spec`, `status`) to `{group: content}`. Converting back
restores a group from the annotation only if that content still converts to exactly what the
object holds now, so an edit made through the other version is never undone by stale data;
the annotation is then removed. An object that loses nothing gets no annotation (and no empty
`annotations: {}`). Both annotation names are reserved: any value they hold on the input is
consumed by the conversion.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

GROUP = "shipwright.io"
V1ALPHA1 = "shipwright.io/v1alpha1"
V1BETA1 = "shipwright.io/v1beta1"
VERSIONS = (V1ALPHA1, V1BETA1)
KINDS = ("Build", "BuildRun", "BuildStrategy", "ClusterBuildStrategy")

ALPHA_FIELDS_ANNOTATION = "conversion.buildwright.io/v1alpha1-fields"
BETA_FIELDS_ANNOTATION = "conversion.buildwright.io/v1beta1-fields"
BUILD_RUN_DELETION_ANNOTATION = "build.shipwright.io/build-run-deletion"

# The deletion annotation lives in metadata but converts together with spec.retention, so it
# travels inside the spec under this key, which can never be a real field name.
_DELETION_KEY = "@build-run-deletion"

STEP_FIELDS = (
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "resources",
    "volumeMounts",
    "imagePullPolicy",
    "securityContext",
)
SCHEDULING_FIELDS = ("nodeSelector", "tolerations", "schedulerName", "runtimeClassName")

DOCKERFILE_PARAM = "dockerfile"
BUILDER_IMAGE_PARAM = "builder-image"


class ConversionError(ValueError):
    """The object cannot be converted; the message says why."""


Part = JSON
Meta = Mapping[str, Any]
Mapper = Callable[[Part, Meta], Part]


@dataclass(frozen=True)
class Group:
    """Top-level keys (of either version) that convert together."""

    name: str
    keys: frozenset[str]
    to_beta: Mapper
    to_alpha: Mapper


# --------------------------------------------------------------------------- small helpers


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _secret_name(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        name: str = ref["name"]
        return name
    return None


def _without(d: Mapping[str, Any], *keys: str) -> JSON:
    return {k: v for k, v in d.items() if k not in keys}


def _identity(part: Part, _meta: Meta) -> Part:
    return dict(part)


def _drop_all(_part: Part, _meta: Meta) -> Part:
    return {}


# --------------------------------------------------------------------------- Build spec groups


def _source_to_beta(part: Part, _meta: Meta) -> Part:
    src = _obj(part.get("source"))
    local_copies = [
        s for s in part.get("sources") or [] if isinstance(s, dict) and s.get("type") == "LocalCopy"
    ]
    bundle = src.get("bundleContainer")
    secret = _secret_name(src.get("credentials"))
    beta: JSON
    if local_copies:
        first = local_copies[0]
        beta = {
            "type": "Local",
            "local": {k: first[k] for k in ("name", "timeout") if k in first},
        }
    elif isinstance(bundle, dict):
        oci: JSON = {k: bundle[k] for k in ("image", "prune") if k in bundle}
        if secret is not None:
            oci["pullSecret"] = secret
        beta = {"type": "OCI", "ociArtifact": oci}
    elif src.get("url"):
        git: JSON = {k: src[k] for k in ("url", "revision") if k in src}
        if secret is not None:
            git["cloneSecret"] = secret
        beta = {"type": "Git", "git": git}
    else:
        return {}
    if "contextDir" in src:
        beta["contextDir"] = src["contextDir"]
    return {"source": beta}


def _source_to_alpha(part: Part, _meta: Meta) -> Part:
    beta = part.get("source")
    if not isinstance(beta, dict):
        # v1alpha1 requires spec.source; "no source" is an empty one.
        return {"source": {}}
    src: JSON = {}
    out: JSON = {"source": src}
    kind = beta.get("type")
    if kind == "Git" and isinstance(beta.get("git"), dict):
        git = beta["git"]
        src.update({k: git[k] for k in ("url", "revision") if k in git})
        if "cloneSecret" in git:
            src["credentials"] = {"name": git["cloneSecret"]}
    elif kind == "OCI" and isinstance(beta.get("ociArtifact"), dict):
        oci = beta["ociArtifact"]
        src["bundleContainer"] = {k: oci[k] for k in ("image", "prune") if k in oci}
        if "pullSecret" in oci:
            src["credentials"] = {"name": oci["pullSecret"]}
    elif kind == "Local":
        local = _obj(beta.get("local"))
        entry: JSON = {"name": local.get("name", "default"), "type": "LocalCopy"}
        if "timeout" in local:
            entry["timeout"] = local["timeout"]
        out["sources"] = [entry]
    if "contextDir" in beta:
        src["contextDir"] = beta["contextDir"]
    return out


def _strategy_to_beta(part: Part, _meta: Meta) -> Part:
    if "strategy" not in part:
        return {}
    strategy = part["strategy"]
    return {
        "strategy": _without(strategy, "apiVersion") if isinstance(strategy, dict) else strategy
    }


def _strategy_to_alpha(part: Part, _meta: Meta) -> Part:
    if "strategy" not in part:
        return {}
    strategy = part["strategy"]
    return {
        "strategy": _without(strategy, "stepResources") if isinstance(strategy, dict) else strategy
    }


def _params_to_beta(part: Part, _meta: Meta) -> Part:
    appended: list[JSON] = []
    dockerfile = part.get("dockerfile")
    if isinstance(dockerfile, str) and dockerfile:
        appended.append({"name": DOCKERFILE_PARAM, "value": dockerfile})
    builder_image = _obj(part.get("builder")).get("image")
    if isinstance(builder_image, str) and builder_image:
        appended.append({"name": BUILDER_IMAGE_PARAM, "value": builder_image})
    values = part.get("paramValues")
    if isinstance(values, list):
        return {"paramValues": values + appended}
    if appended:
        return {"paramValues": appended}
    return {"paramValues": values} if "paramValues" in part else {}


def _is_single_value(value: Any, name: str) -> bool:
    return (
        isinstance(value, dict)
        and value.get("name") == name
        and set(value) == {"name", "value"}
        and isinstance(value["value"], str)
        and value["value"] != ""
    )


def _params_to_alpha(part: Part, _meta: Meta) -> Part:
    if "paramValues" not in part:
        return {}
    values = part["paramValues"]
    if not isinstance(values, list):
        return {"paramValues": values}
    remaining = list(values)
    out: JSON = {}
    # The last match is taken because the forward direction appends these entries last.
    for name in (DOCKERFILE_PARAM, BUILDER_IMAGE_PARAM):
        hits = [i for i, v in enumerate(remaining) if _is_single_value(v, name)]
        if hits:
            value = remaining.pop(hits[-1])["value"]
            if name == DOCKERFILE_PARAM:
                out["dockerfile"] = value
            else:
                out["builder"] = {"image": value}
    if remaining or not out:
        out["paramValues"] = remaining
    return out


def _image_to_beta(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    beta = _without(output, "credentials")
    secret = _secret_name(output.get("credentials"))
    if secret is not None:
        beta["pushSecret"] = secret
    return beta


def _image_to_alpha(output: Any, *, dropped: tuple[str, ...]) -> Any:
    if not isinstance(output, dict):
        return output
    alpha = _without(output, "pushSecret", *dropped)
    if "pushSecret" in output:
        alpha["credentials"] = {"name": output["pushSecret"]}
    return alpha


def _output_to_beta(part: Part, _meta: Meta) -> Part:
    return {"output": _image_to_beta(part["output"])} if "output" in part else {}


def _build_output_to_alpha(part: Part, _meta: Meta) -> Part:
    if "output" not in part:
        return {}
    return {"output": _image_to_alpha(part["output"], dropped=("vulnerabilityScan", "platforms"))}


def _buildrun_output_to_alpha(part: Part, _meta: Meta) -> Part:
    if "output" not in part:
        return {}
    dropped = ("vulnerabilityScan", "platforms", "insecure", "timestamp")
    return {"output": _image_to_alpha(part["output"], dropped=dropped)}


def _trigger_to_beta(part: Part, _meta: Meta) -> Part:
    trigger = part.get("trigger")
    if not isinstance(trigger, dict):
        return dict(part)
    beta = _without(trigger, "secretRef")
    secret = _secret_name(trigger.get("secretRef"))
    if secret is not None:
        beta["triggerSecret"] = secret
    return {"trigger": beta}


def _trigger_to_alpha(part: Part, _meta: Meta) -> Part:
    trigger = part.get("trigger")
    if not isinstance(trigger, dict):
        return dict(part)
    alpha = _without(trigger, "triggerSecret")
    if "triggerSecret" in trigger:
        alpha["secretRef"] = {"name": trigger["triggerSecret"]}
    return {"trigger": alpha}


def _volumes_to_beta(part: Part, _meta: Meta) -> Part:
    volumes = part.get("volumes")
    if not isinstance(volumes, list):
        return dict(part)
    return {"volumes": [_without(v, "description") if isinstance(v, dict) else v for v in volumes]}


def _retention_to_beta(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    retention = part.get("retention")
    if "retention" in part:
        out["retention"] = dict(retention) if isinstance(retention, dict) else retention
    if _DELETION_KEY in part:
        target = out.setdefault("retention", {})
        if isinstance(target, dict):
            target["atBuildDeletion"] = part[_DELETION_KEY] == "true"
    return out


def _retention_to_alpha(part: Part, _meta: Meta) -> Part:
    retention = part.get("retention")
    if not isinstance(retention, dict):
        return {"retention": retention} if "retention" in part else {}
    out: JSON = {}
    rest = _without(retention, "atBuildDeletion")
    if "atBuildDeletion" in retention:
        out[_DELETION_KEY] = "true" if retention["atBuildDeletion"] is True else "false"
        if rest:
            out["retention"] = rest
    else:
        out["retention"] = rest
    return out


# --------------------------------------------------------------------------- BuildRun groups


def _build_ref_to_beta(part: Part, _meta: Meta) -> Part:
    build: JSON = {}
    ref = part.get("buildRef")
    if isinstance(ref, dict) and "name" in ref:
        build["name"] = ref["name"]
    if "buildSpec" in part:
        build["spec"] = _embedded_spec_to_beta(part["buildSpec"])
    return {"build": build} if build or "buildRef" in part else {}


def _build_ref_to_alpha(part: Part, _meta: Meta) -> Part:
    build = part.get("build")
    if not isinstance(build, dict):
        return {}
    out: JSON = {}
    if "name" in build:
        out["buildRef"] = {"name": build["name"]}
    if "spec" in build:
        out["buildSpec"] = _embedded_spec_to_alpha(build["spec"])
    return out


def _local_source_to_beta(part: Part, _meta: Meta) -> Part:
    for entry in part.get("sources") or []:
        if isinstance(entry, dict) and entry.get("type") == "LocalCopy":
            local = {k: entry[k] for k in ("name", "timeout") if k in entry}
            return {"source": {"type": "Local", "local": local}}
    return {}


def _local_source_to_alpha(part: Part, _meta: Meta) -> Part:
    source = part.get("source")
    if not isinstance(source, dict) or source.get("type") != "Local":
        return {}
    local = _obj(source.get("local"))
    entry: JSON = {"name": local.get("name", "default"), "type": "LocalCopy"}
    if "timeout" in local:
        entry["timeout"] = local["timeout"]
    return {"sources": [entry]}


GENERATE_SERVICE_ACCOUNT = ".generate"


def _service_account_to_beta(part: Part, _meta: Meta) -> Part:
    account = part.get("serviceAccount")
    if not isinstance(account, dict):
        return {}
    if account.get("generate") is True:
        return {"serviceAccount": GENERATE_SERVICE_ACCOUNT}
    if isinstance(account.get("name"), str):
        return {"serviceAccount": account["name"]}
    return {}


def _service_account_to_alpha(part: Part, meta: Meta) -> Part:
    account = part.get("serviceAccount")
    if not isinstance(account, str):
        return {}
    if account == GENERATE_SERVICE_ACCOUNT:
        generated: JSON = {"generate": True}
        if "name" in meta:
            generated = {"name": meta["name"], "generate": True}
        return {"serviceAccount": generated}
    return {"serviceAccount": {"name": account}}


# --------------------------------------------------------------------------- BuildRun status


def _executor_to_beta(part: Part, _meta: Meta) -> Part:
    ref = part.get("latestTaskRunRef")
    if not isinstance(ref, str):
        return {}
    return {"taskRunName": ref, "executor": {"name": ref, "kind": "TaskRun"}}


def _executor_to_alpha(part: Part, _meta: Meta) -> Part:
    name = part.get("taskRunName")
    if not isinstance(name, str):
        name = _obj(part.get("executor")).get("name")
    return {"latestTaskRunRef": name} if isinstance(name, str) else {}


def _source_result_to_beta(part: Part, _meta: Meta) -> Part:
    results = [s for s in part.get("sources") or [] if isinstance(s, dict)]
    if not results:
        return {}
    chosen = next((s for s in results if s.get("name") == "default"), results[0])
    beta = _without(chosen, "name", "bundle")
    if "bundle" in chosen:
        beta["ociArtifact"] = chosen["bundle"]
    return {"source": beta}


def _source_result_to_alpha(part: Part, _meta: Meta) -> Part:
    result = part.get("source")
    if not isinstance(result, dict):
        return {}
    alpha: JSON = {"name": "default", **_without(result, "ociArtifact")}
    if "ociArtifact" in result:
        alpha["bundle"] = result["ociArtifact"]
    return {"sources": [alpha]}


def _failure_to_beta(part: Part, _meta: Meta) -> Part:
    # The deprecated failedAt mirror is ignored: failureDetails.location is authoritative.
    return {"failureDetails": part["failureDetails"]} if "failureDetails" in part else {}


def _failure_to_alpha(part: Part, _meta: Meta) -> Part:
    if "failureDetails" not in part:
        return {}
    details = part["failureDetails"]
    out: JSON = {"failureDetails": details}
    location = _obj(details).get("location")
    if isinstance(location, dict):
        out["failedAt"] = copy.deepcopy(location)
    return out


def _status_output_to_alpha(part: Part, _meta: Meta) -> Part:
    output = part.get("output")
    if not isinstance(output, dict):
        return dict(part)
    return {"output": _without(output, "vulnerabilities")}


def _status_build_spec_to_beta(part: Part, _meta: Meta) -> Part:
    return {"buildSpec": _embedded_spec_to_beta(part["buildSpec"])} if "buildSpec" in part else {}


def _status_build_spec_to_alpha(part: Part, _meta: Meta) -> Part:
    if "buildSpec" not in part:
        return {}
    return {"buildSpec": _embedded_spec_to_alpha(part["buildSpec"])}


# --------------------------------------------------------------------------- strategy groups

_LEGACY_TO_BETA = (
    ("$(params.DOCKERFILE)", "$(params.dockerfile)", DOCKERFILE_PARAM),
    ("$(build.dockerfile)", "$(params.dockerfile)", DOCKERFILE_PARAM),
    ("$(build.builder.image)", "$(params.builder-image)", BUILDER_IMAGE_PARAM),
)
_BETA_TO_LEGACY = (
    ("$(params.dockerfile)", "$(params.DOCKERFILE)", DOCKERFILE_PARAM),
    ("$(params.builder-image)", "$(build.builder.image)", BUILDER_IMAGE_PARAM),
)


def _rewrite_step(
    step: JSON, replacements: tuple[tuple[str, str, str], ...], used: set[str]
) -> JSON:
    """Rewrite placeholders in command, args and env values (never in image), noting use."""

    def rewrite(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for old, new, param in replacements:
            if old in text:
                used.add(param)
                text = text.replace(old, new)
        return text

    out = dict(step)
    for field in ("command", "args"):
        if isinstance(step.get(field), list):
            out[field] = [rewrite(item) for item in step[field]]
    if isinstance(step.get("env"), list):
        out["env"] = [
            {**var, "value": rewrite(var["value"])}
            if isinstance(var, dict) and "value" in var
            else var
            for var in step["env"]
        ]
    return out


def _steps_to_beta(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    used: set[str] = set()
    if "buildSteps" in part:
        steps = part["buildSteps"]
        if isinstance(steps, list):
            out["steps"] = [
                _rewrite_step({k: s[k] for k in STEP_FIELDS if k in s}, _LEGACY_TO_BETA, used)
                if isinstance(s, dict)
                else s
                for s in steps
            ]
        else:
            out["steps"] = steps
    params = part.get("parameters")
    if "parameters" in part:
        out["parameters"] = list(params) if isinstance(params, list) else params
    declared = {p.get("name") for p in params or [] if isinstance(p, dict)}
    synthesized: list[JSON] = []
    if DOCKERFILE_PARAM in used and DOCKERFILE_PARAM not in declared:
        synthesized.append(
            {
                "name": DOCKERFILE_PARAM,
                "description": "The Dockerfile to be built.",
                "type": "string",
                "default": "Dockerfile",
            }
        )
    if BUILDER_IMAGE_PARAM in used and BUILDER_IMAGE_PARAM not in declared:
        synthesized.append(
            {"name": BUILDER_IMAGE_PARAM, "description": "The builder image.", "type": "string"}
        )
    if synthesized:
        existing = out.get("parameters")
        out["parameters"] = (existing if isinstance(existing, list) else []) + synthesized
    return out


def _is_migrated_param(param: Any) -> str | None:
    if not isinstance(param, dict) or param.get("type") != "string":
        return None
    if param.get("name") == DOCKERFILE_PARAM and param.get("default") == "Dockerfile":
        return DOCKERFILE_PARAM
    if param.get("name") == BUILDER_IMAGE_PARAM and "default" not in param:
        return BUILDER_IMAGE_PARAM
    return None


def _steps_to_alpha(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    migrated: set[str] = set()
    params = part.get("parameters")
    if isinstance(params, list):
        kept = []
        for param in params:
            name = _is_migrated_param(param)
            if name is None:
                kept.append(param)
            else:
                migrated.add(name)
        if kept or not migrated:
            out["parameters"] = kept
    elif "parameters" in part:
        out["parameters"] = params
    replacements = tuple(r for r in _BETA_TO_LEGACY if r[2] in migrated)
    if "steps" in part:
        steps = part["steps"]
        if isinstance(steps, list):
            out["buildSteps"] = [
                _rewrite_step(s, replacements, set()) if isinstance(s, dict) else s for s in steps
            ]
        else:
            out["buildSteps"] = steps
    return out


# --------------------------------------------------------------------------- group tables


def _group(name: str, keys: tuple[str, ...], to_beta: Mapper, to_alpha: Mapper) -> Group:
    return Group(name, frozenset(keys), to_beta, to_alpha)


def _build_spec_groups(output_to_alpha: Mapper) -> tuple[Group, ...]:
    return (
        _group("source", ("source", "sources"), _source_to_beta, _source_to_alpha),
        _group("strategy", ("strategy",), _strategy_to_beta, _strategy_to_alpha),
        _group(
            "paramValues",
            ("paramValues", "dockerfile", "builder"),
            _params_to_beta,
            _params_to_alpha,
        ),
        _group("output", ("output",), _output_to_beta, output_to_alpha),
        _group("trigger", ("trigger",), _trigger_to_beta, _trigger_to_alpha),
        _group("volumes", ("volumes",), _volumes_to_beta, _identity),
        _group("retention", ("retention", _DELETION_KEY), _retention_to_beta, _retention_to_alpha),
        _group("scheduling", SCHEDULING_FIELDS, _identity, _drop_all),
    )


BUILD_SPEC_GROUPS = _build_spec_groups(_build_output_to_alpha)

BUILDRUN_SPEC_GROUPS = (
    _group("build", ("buildRef", "buildSpec", "build"), _build_ref_to_beta, _build_ref_to_alpha),
    _group("source", ("sources", "source"), _local_source_to_beta, _local_source_to_alpha),
    _group(
        "serviceAccount", ("serviceAccount",), _service_account_to_beta, _service_account_to_alpha
    ),
    _group("output", ("output",), _output_to_beta, _buildrun_output_to_alpha),
    _group("volumes", ("volumes",), _volumes_to_beta, _identity),
    _group("scheduling", (*SCHEDULING_FIELDS, "stepResources"), _identity, _drop_all),
)

BUILDRUN_STATUS_GROUPS = (
    _group(
        "executor",
        ("latestTaskRunRef", "taskRunName", "executor"),
        _executor_to_beta,
        _executor_to_alpha,
    ),
    _group("source", ("sources", "source"), _source_result_to_beta, _source_result_to_alpha),
    _group("failureDetails", ("failureDetails", "failedAt"), _failure_to_beta, _failure_to_alpha),
    _group("output", ("output",), _identity, _status_output_to_alpha),
    _group("buildSpec", ("buildSpec",), _status_build_spec_to_beta, _status_build_spec_to_alpha),
)

STRATEGY_SPEC_GROUPS = (
    _group("steps", ("buildSteps", "steps", "parameters"), _steps_to_beta, _steps_to_alpha),
)

# --------------------------------------------------------------------------- the engine

Stash = dict[str, Any]


def _convert_section(
    section: JSON,
    groups: tuple[Group, ...],
    *,
    to_beta: bool,
    meta: Meta,
    restore: Mapping[str, Any],
) -> tuple[JSON, Stash]:
    """Convert one section (a spec or status) group by group.

    Returns the converted section and, per group, the source form that the target cannot
    express (to be stashed). `restore` holds target-version forms from an earlier conversion;
    one is used only when it still converts to exactly the current source form.
    """
    out: JSON = {}
    stash: Stash = {}
    grouped: set[str] = set()
    emitted: set[str] = set()

    def convert_group(group: Group) -> None:
        forward = group.to_beta if to_beta else group.to_alpha
        backward = group.to_alpha if to_beta else group.to_beta
        part = {k: section[k] for k in group.keys if k in section}
        saved = restore.get(group.name)
        if isinstance(saved, dict) and backward(saved, meta) == part:
            converted = saved
        else:
            converted = forward(part, meta)
            if backward(converted, meta) != part:
                stash[group.name] = part
        out.update(converted)

    for group in groups:
        grouped |= group.keys
    group_of = {key: group for group in groups for key in group.keys}
    # Keep the input's key order where possible: a group is emitted at its first key.
    for key, value in section.items():
        if key not in grouped:
            out[key] = value
        elif group_of[key].name not in emitted:
            emitted.add(group_of[key].name)
            convert_group(group_of[key])
    for group in groups:
        if group.name not in emitted:
            convert_group(group)
    return out, stash


def _embedded_spec_to_beta(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    converted, _ = _convert_section(spec, BUILD_SPEC_GROUPS, to_beta=True, meta={}, restore={})
    return converted


def _embedded_spec_to_alpha(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    converted, _ = _convert_section(spec, BUILD_SPEC_GROUPS, to_beta=False, meta={}, restore={})
    # Without object metadata the deletion flag has no alpha form; the enclosing group keeps
    # the beta form in the annotation instead.
    converted.pop(_DELETION_KEY, None)
    return converted


_SECTIONS: dict[str, tuple[tuple[str, tuple[Group, ...]], ...]] = {
    "Build": (("spec", BUILD_SPEC_GROUPS),),
    "BuildRun": (("spec", BUILDRUN_SPEC_GROUPS), ("status", BUILDRUN_STATUS_GROUPS)),
    "BuildStrategy": (("spec", STRATEGY_SPEC_GROUPS),),
    "ClusterBuildStrategy": (("spec", STRATEGY_SPEC_GROUPS),),
}


def _load_stash(value: Any) -> dict[str, Any]:
    """Parse a stash annotation; anything unreadable counts as no stash."""
    if not isinstance(value, str):
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _convert(obj: Mapping[str, Any], *, to_beta: bool) -> JSON:
    kind = obj.get("kind")
    if kind not in _SECTIONS:
        raise ConversionError("unsupported Kind")
    source_version, target_version = (V1ALPHA1, V1BETA1) if to_beta else (V1BETA1, V1ALPHA1)
    if obj.get("apiVersion") != source_version:
        raise ConversionError(
            f"{kind} has apiVersion {obj.get('apiVersion')!r}, expected {source_version!r}"
        )
    result: JSON = copy.deepcopy(dict(obj))
    result["apiVersion"] = target_version
    metadata = result.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConversionError(f"{kind} metadata must be an object")
    annotations = metadata.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ConversionError(f"{kind} metadata.annotations must be an object")
    annotations = dict(annotations or {})
    # Both stash annotations are consumed: the one written for this direction is restored,
    # a leftover one for the other direction is stale by definition.
    restore_key, stash_key = (
        (BETA_FIELDS_ANNOTATION, ALPHA_FIELDS_ANNOTATION)
        if to_beta
        else (ALPHA_FIELDS_ANNOTATION, BETA_FIELDS_ANNOTATION)
    )
    restore = _load_stash(annotations.pop(restore_key, None))
    annotations.pop(stash_key, None)

    stash: dict[str, Stash] = {}
    for section_name, groups in _SECTIONS[kind]:
        if section_name not in result:
            continue
        section = result[section_name]
        if not isinstance(section, dict):
            raise ConversionError(f"{kind} {section_name} must be an object")
        section = dict(section)
        lift = kind == "Build" and section_name == "spec"
        if lift and BUILD_RUN_DELETION_ANNOTATION in annotations:
            section[_DELETION_KEY] = annotations.pop(BUILD_RUN_DELETION_ANNOTATION)
        converted, lost = _convert_section(
            section,
            groups,
            to_beta=to_beta,
            meta=metadata,
            restore=_obj(restore.get(section_name)),
        )
        if lift and _DELETION_KEY in converted:
            annotations[BUILD_RUN_DELETION_ANNOTATION] = converted.pop(_DELETION_KEY)
        result[section_name] = converted
        if lost:
            stash[section_name] = lost

    if stash:
        annotations[stash_key] = json.dumps(stash, separators=(",", ":"), sort_keys=True)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if "metadata" in result or metadata:
        result["metadata"] = metadata
    return result


# --------------------------------------------------------------------------- public API


def build_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 Build to v1beta1."""
    return _convert_kind(obj, "Build", to_beta=True)


def build_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 Build to v1alpha1."""
    return _convert_kind(obj, "Build", to_beta=False)


def buildrun_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 BuildRun to v1beta1."""
    return _convert_kind(obj, "BuildRun", to_beta=True)


def buildrun_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 BuildRun to v1alpha1."""
    return _convert_kind(obj, "BuildRun", to_beta=False)


def strategy_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 BuildStrategy or ClusterBuildStrategy to v1beta1."""
    return _convert_kind(obj, "BuildStrategy", "ClusterBuildStrategy", to_beta=True)


def strategy_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 BuildStrategy or ClusterBuildStrategy to v1alpha1."""
    return _convert_kind(obj, "BuildStrategy", "ClusterBuildStrategy", to_beta=False)


def _convert_kind(obj: Mapping[str, Any], *kinds: str, to_beta: bool) -> JSON:
    if obj.get("kind") not in kinds:
        raise ConversionError(f"expected kind {' or '.join(kinds)}, got {obj.get('kind')!r}")
    return _convert(obj, to_beta=to_beta)


def convert(obj: Mapping[str, Any], desired_api_version: str) -> JSON:
    """Convert a whole object to `desired_api_version`; the input is never modified.

    Raises ConversionError for an unsupported kind, an unknown source or desired version,
    or an object whose metadata/spec/status is not an object.
    """
    if not isinstance(obj, Mapping):
        raise ConversionError("object must be a JSON object")
    if obj.get("kind") not in KINDS:
        raise ConversionError("unsupported Kind")
    if desired_api_version not in VERSIONS:
        raise ConversionError(
            f"unsupported desiredAPIVersion {desired_api_version!r}; "
            f"supported: {', '.join(VERSIONS)}"
        )
    current = obj.get("apiVersion")
    if current not in VERSIONS:
        raise ConversionError(
            f"unsupported apiVersion {current!r} of {obj.get('kind')}; "
            f"supported: {', '.join(VERSIONS)}"
        )
    if current == desired_api_version:
        return copy.deepcopy(dict(obj))
    return _convert(obj, to_beta=desired_api_version == V1BETA1)
