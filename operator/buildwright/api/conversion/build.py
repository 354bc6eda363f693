"""The groups of a Build spec (also embedded in a BuildRun): source, strategy, parameters,
output, triggers, volumes and retention, each with its alpha→beta and beta→alpha function."""

from __future__ import annotations

from typing import Any

from buildwright.api.conversion.common import (
    BUILDER_IMAGE_PARAM,
    DELETION_KEY,
    DOCKERFILE_PARAM,
    JSON,
    SCHEDULING_FIELDS,
    Group,
    Mapper,
    Meta,
    Part,
    as_object,
    convert_section,
    drop_all,
    group,
    identity,
    secret_name,
    without,
)


def source_to_beta(part: Part, _meta: Meta) -> Part:
    src = as_object(part.get("source"))
    local_copies = [
        s for s in part.get("sources") or [] if isinstance(s, dict) and s.get("type") == "LocalCopy"
    ]
    bundle = src.get("bundleContainer")
    secret = secret_name(src.get("credentials"))
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


def source_to_alpha(part: Part, _meta: Meta) -> Part:
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
        local = as_object(beta.get("local"))
        entry: JSON = {"name": local.get("name", "default"), "type": "LocalCopy"}
        if "timeout" in local:
            entry["timeout"] = local["timeout"]
        out["sources"] = [entry]
    if "contextDir" in beta:
        src["contextDir"] = beta["contextDir"]
    return out


def strategy_to_beta(part: Part, _meta: Meta) -> Part:
    if "strategy" not in part:
        return {}
    strategy = part["strategy"]
    return {
        "strategy": without(strategy, "apiVersion") if isinstance(strategy, dict) else strategy
    }


def strategy_to_alpha(part: Part, _meta: Meta) -> Part:
    if "strategy" not in part:
        return {}
    strategy = part["strategy"]
    return {
        "strategy": without(strategy, "stepResources") if isinstance(strategy, dict) else strategy
    }


def params_to_beta(part: Part, _meta: Meta) -> Part:
    appended: list[JSON] = []
    dockerfile = part.get("dockerfile")
    if isinstance(dockerfile, str) and dockerfile:
        appended.append({"name": DOCKERFILE_PARAM, "value": dockerfile})
    builder_image = as_object(part.get("builder")).get("image")
    if isinstance(builder_image, str) and builder_image:
        appended.append({"name": BUILDER_IMAGE_PARAM, "value": builder_image})
    values = part.get("paramValues")
    if isinstance(values, list):
        return {"paramValues": values + appended}
    if appended:
        return {"paramValues": appended}
    return {"paramValues": values} if "paramValues" in part else {}


def is_single_value(value: Any, name: str) -> bool:
    return (
        isinstance(value, dict)
        and value.get("name") == name
        and set(value) == {"name", "value"}
        and isinstance(value["value"], str)
        and value["value"] != ""
    )


def params_to_alpha(part: Part, _meta: Meta) -> Part:
    if "paramValues" not in part:
        return {}
    values = part["paramValues"]
    if not isinstance(values, list):
        return {"paramValues": values}
    remaining = list(values)
    out: JSON = {}
    # The last match is taken because the forward direction appends these entries last.
    for name in (DOCKERFILE_PARAM, BUILDER_IMAGE_PARAM):
        hits = [i for i, v in enumerate(remaining) if is_single_value(v, name)]
        if hits:
            value = remaining.pop(hits[-1])["value"]
            if name == DOCKERFILE_PARAM:
                out["dockerfile"] = value
            else:
                out["builder"] = {"image": value}
    if remaining or not out:
        out["paramValues"] = remaining
    return out


def image_to_beta(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    beta = without(output, "credentials")
    secret = secret_name(output.get("credentials"))
    if secret is not None:
        beta["pushSecret"] = secret
    return beta


def image_to_alpha(output: Any, *, dropped: tuple[str, ...]) -> Any:
    if not isinstance(output, dict):
        return output
    alpha = without(output, "pushSecret", *dropped)
    if "pushSecret" in output:
        alpha["credentials"] = {"name": output["pushSecret"]}
    return alpha


def output_to_beta(part: Part, _meta: Meta) -> Part:
    return {"output": image_to_beta(part["output"])} if "output" in part else {}


def build_output_to_alpha(part: Part, _meta: Meta) -> Part:
    if "output" not in part:
        return {}
    return {"output": image_to_alpha(part["output"], dropped=("vulnerabilityScan", "platforms"))}


def buildrun_output_to_alpha(part: Part, _meta: Meta) -> Part:
    if "output" not in part:
        return {}
    dropped = ("vulnerabilityScan", "platforms", "insecure", "timestamp")
    return {"output": image_to_alpha(part["output"], dropped=dropped)}


def trigger_to_beta(part: Part, _meta: Meta) -> Part:
    trigger = part.get("trigger")
    if not isinstance(trigger, dict):
        return dict(part)
    beta = without(trigger, "secretRef")
    secret = secret_name(trigger.get("secretRef"))
    if secret is not None:
        beta["triggerSecret"] = secret
    return {"trigger": beta}


def trigger_to_alpha(part: Part, _meta: Meta) -> Part:
    trigger = part.get("trigger")
    if not isinstance(trigger, dict):
        return dict(part)
    alpha = without(trigger, "triggerSecret")
    if "triggerSecret" in trigger:
        alpha["secretRef"] = {"name": trigger["triggerSecret"]}
    return {"trigger": alpha}


def volumes_to_beta(part: Part, _meta: Meta) -> Part:
    volumes = part.get("volumes")
    if not isinstance(volumes, list):
        return dict(part)
    return {"volumes": [without(v, "description") if isinstance(v, dict) else v for v in volumes]}


def retention_to_beta(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    retention = part.get("retention")
    if "retention" in part:
        out["retention"] = dict(retention) if isinstance(retention, dict) else retention
    if DELETION_KEY in part:
        target = out.setdefault("retention", {})
        if isinstance(target, dict):
            target["atBuildDeletion"] = part[DELETION_KEY] == "true"
    return out


def retention_to_alpha(part: Part, _meta: Meta) -> Part:
    retention = part.get("retention")
    if not isinstance(retention, dict):
        return {"retention": retention} if "retention" in part else {}
    out: JSON = {}
    rest = without(retention, "atBuildDeletion")
    if "atBuildDeletion" in retention:
        out[DELETION_KEY] = "true" if retention["atBuildDeletion"] is True else "false"
        if rest:
            out["retention"] = rest
    else:
        out["retention"] = rest
    return out


def build_spec_groups(output_to_alpha: Mapper) -> tuple[Group, ...]:
    return (
        group("source", ("source", "sources"), source_to_beta, source_to_alpha),
        group("strategy", ("strategy",), strategy_to_beta, strategy_to_alpha),
        group(
            "paramValues",
            ("paramValues", "dockerfile", "builder"),
            params_to_beta,
            params_to_alpha,
        ),
        group("output", ("output",), output_to_beta, output_to_alpha),
        group("trigger", ("trigger",), trigger_to_beta, trigger_to_alpha),
        group("volumes", ("volumes",), volumes_to_beta, identity),
        group("retention", ("retention", DELETION_KEY), retention_to_beta, retention_to_alpha),
        group("scheduling", SCHEDULING_FIELDS, identity, drop_all),
    )


BUILD_SPEC_GROUPS = build_spec_groups(build_output_to_alpha)


def embedded_spec_to_beta(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    converted, _ = convert_section(spec, BUILD_SPEC_GROUPS, to_beta=True, meta={}, restore={})
    return converted


def embedded_spec_to_alpha(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    converted, _ = convert_section(spec, BUILD_SPEC_GROUPS, to_beta=False, meta={}, restore={})
    # Without object metadata the deletion flag has no alpha form; the enclosing group keeps
    # the beta form in the annotation instead.
    converted.pop(DELETION_KEY, None)
    return converted
