"""The groups of a BuildRun spec (the Build reference, a local source, the service account)
and of its status (executor, source results, failure details, output, the build spec)."""

from __future__ import annotations

import copy

from buildwright.api.conversion.build import (
    buildrun_output_to_alpha,
    embedded_spec_to_alpha,
    embedded_spec_to_beta,
    output_to_beta,
    volumes_to_beta,
)
from buildwright.api.conversion.common import (
    JSON,
    SCHEDULING_FIELDS,
    Meta,
    Part,
    as_object,
    drop_all,
    group,
    identity,
    without,
)


def build_ref_to_beta(part: Part, _meta: Meta) -> Part:
    build: JSON = {}
    ref = part.get("buildRef")
    if isinstance(ref, dict) and "name" in ref:
        build["name"] = ref["name"]
    if "buildSpec" in part:
        build["spec"] = embedded_spec_to_beta(part["buildSpec"])
    return {"build": build} if build or "buildRef" in part else {}


def build_ref_to_alpha(part: Part, _meta: Meta) -> Part:
    build = part.get("build")
    if not isinstance(build, dict):
        return {}
    out: JSON = {}
    if "name" in build:
        out["buildRef"] = {"name": build["name"]}
    if "spec" in build:
        out["buildSpec"] = embedded_spec_to_alpha(build["spec"])
    return out


def local_source_to_beta(part: Part, _meta: Meta) -> Part:
    for entry in part.get("sources") or []:
        if isinstance(entry, dict) and entry.get("type") == "LocalCopy":
            local = {k: entry[k] for k in ("name", "timeout") if k in entry}
            return {"source": {"type": "Local", "local": local}}
    return {}


def local_source_to_alpha(part: Part, _meta: Meta) -> Part:
    source = part.get("source")
    if not isinstance(source, dict) or source.get("type") != "Local":
        return {}
    local = as_object(source.get("local"))
    entry: JSON = {"name": local.get("name", "default"), "type": "LocalCopy"}
    if "timeout" in local:
        entry["timeout"] = local["timeout"]
    return {"sources": [entry]}


GENERATE_SERVICE_ACCOUNT = ".generate"


def service_account_to_beta(part: Part, _meta: Meta) -> Part:
    account = part.get("serviceAccount")
    if not isinstance(account, dict):
        return {}
    if account.get("generate") is True:
        return {"serviceAccount": GENERATE_SERVICE_ACCOUNT}
    if isinstance(account.get("name"), str):
        return {"serviceAccount": account["name"]}
    return {}


def service_account_to_alpha(part: Part, meta: Meta) -> Part:
    account = part.get("serviceAccount")
    if not isinstance(account, str):
        return {}
    if account == GENERATE_SERVICE_ACCOUNT:
        generated: JSON = {"generate": True}
        if "name" in meta:
            generated = {"name": meta["name"], "generate": True}
        return {"serviceAccount": generated}
    return {"serviceAccount": {"name": account}}


def executor_to_beta(part: Part, _meta: Meta) -> Part:
    ref = part.get("latestTaskRunRef")
    if not isinstance(ref, str):
        return {}
    return {"taskRunName": ref, "executor": {"name": ref, "kind": "TaskRun"}}


def executor_to_alpha(part: Part, _meta: Meta) -> Part:
    name = part.get("taskRunName")
    if not isinstance(name, str):
        name = as_object(part.get("executor")).get("name")
    return {"latestTaskRunRef": name} if isinstance(name, str) else {}


def source_result_to_beta(part: Part, _meta: Meta) -> Part:
    results = [s for s in part.get("sources") or [] if isinstance(s, dict)]
    if not results:
        return {}
    chosen = next((s for s in results if s.get("name") == "default"), results[0])
    beta = without(chosen, "name", "bundle")
    if "bundle" in chosen:
        beta["ociArtifact"] = chosen["bundle"]
    return {"source": beta}


def source_result_to_alpha(part: Part, _meta: Meta) -> Part:
    result = part.get("source")
    if not isinstance(result, dict):
        return {}
    alpha: JSON = {"name": "default", **without(result, "ociArtifact")}
    if "ociArtifact" in result:
        alpha["bundle"] = result["ociArtifact"]
    return {"sources": [alpha]}


def failure_to_beta(part: Part, _meta: Meta) -> Part:
    # The deprecated failedAt mirror is ignored: failureDetails.location is authoritative.
    return {"failureDetails": part["failureDetails"]} if "failureDetails" in part else {}


def failure_to_alpha(part: Part, _meta: Meta) -> Part:
    if "failureDetails" not in part:
        return {}
    details = part["failureDetails"]
    out: JSON = {"failureDetails": details}
    location = as_object(details).get("location")
    if isinstance(location, dict):
        out["failedAt"] = copy.deepcopy(location)
    return out


def status_output_to_alpha(part: Part, _meta: Meta) -> Part:
    output = part.get("output")
    if not isinstance(output, dict):
        return dict(part)
    return {"output": without(output, "vulnerabilities")}


def status_build_spec_to_beta(part: Part, _meta: Meta) -> Part:
    return {"buildSpec": embedded_spec_to_beta(part["buildSpec"])} if "buildSpec" in part else {}


def status_build_spec_to_alpha(part: Part, _meta: Meta) -> Part:
    if "buildSpec" not in part:
        return {}
    return {"buildSpec": embedded_spec_to_alpha(part["buildSpec"])}


BUILDRUN_SPEC_GROUPS = (
    group("build", ("buildRef", "buildSpec", "build"), build_ref_to_beta, build_ref_to_alpha),
    group("source", ("sources", "source"), local_source_to_beta, local_source_to_alpha),
    group(
        "serviceAccount", ("serviceAccount",), service_account_to_beta, service_account_to_alpha
    ),
    group("output", ("output",), output_to_beta, buildrun_output_to_alpha),
    group("volumes", ("volumes",), volumes_to_beta, identity),
    group("scheduling", (*SCHEDULING_FIELDS, "stepResources"), identity, drop_all),
)


BUILDRUN_STATUS_GROUPS = (
    group(
        "executor",
        ("latestTaskRunRef", "taskRunName", "executor"),
        executor_to_beta,
        executor_to_alpha,
    ),
    group("source", ("sources", "source"), source_result_to_beta, source_result_to_alpha),
    group("failureDetails", ("failureDetails", "failedAt"), failure_to_beta, failure_to_alpha),
    group("output", ("output",), identity, status_output_to_alpha),
    group("buildSpec", ("buildSpec",), status_build_spec_to_beta, status_build_spec_to_alpha),
)
