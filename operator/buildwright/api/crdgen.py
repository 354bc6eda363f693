"""Generate the CustomResourceDefinitions in `crds/` from the pydantic models.

The models are the one source of truth; `python -m buildwright.api.crdgen crds` rewrites the
YAML and a unit test fails when the committed files differ from what this module produces.

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 subset. The translation:
inline every `$ref`, turn `Optional[X]` (`anyOf: [X, null]`) into `X`, turn `int | str`
quantities into `x-kubernetes-int-or-string`, drop `title`/`default`/`additionalProperties:
false` (structural schemas prune and strict field validation rejects unknown fields anyway),
and keep open core types as `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from buildwright.api import v1alpha1, v1beta1

GROUP = "shipwright.io"
CONVERSION_SERVICE = {"namespace": "buildwright", "name": "buildwright-webhook", "path": "/convert"}

JsonSchema = dict[str, Any]


def _resolve(schema: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return schema


def _structural(schema: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    schema = _resolve(schema, defs)
    description = schema.get("description")
    extensions = {k: v for k, v in schema.items() if k.startswith("x-kubernetes-")}

    if "anyOf" in schema:
        options = [_resolve(o, defs) for o in schema["anyOf"] if o.get("type") != "null"]
        types = {o.get("type") for o in options}
        if types == {"integer", "string"}:
            out: JsonSchema = {"x-kubernetes-int-or-string": True}
        elif len(options) == 1:
            out = _structural({**options[0], **extensions}, defs)
            if description:  # the field's own words beat the docstring of its type
                out["description"] = " ".join(description.split())
            return out
        else:
            raise ValueError(f"cannot express anyOf {schema['anyOf']} structurally")
    elif "const" in schema:
        out = {"type": "string", "enum": [schema["const"]]}
    elif "enum" in schema:
        out = {"type": schema.get("type", "string"), "enum": list(schema["enum"])}
    elif schema.get("type") == "object" or "properties" in schema:
        out = {"type": "object"}
        properties = schema.get("properties", {})
        if properties:
            out["properties"] = {k: _structural(v, defs) for k, v in properties.items()}
        if schema.get("required"):
            out["required"] = list(schema["required"])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict) and not properties:
            if additional:
                out["additionalProperties"] = _structural(additional, defs)
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif additional is True or (not properties and additional is None):
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif schema.get("type") == "array":
        out = {"type": "array", "items": _structural(schema.get("items", {}), defs)}
    elif schema.get("type") in ("string", "integer", "boolean", "number"):
        out = {"type": schema["type"]}
        for key in ("format", "minimum", "maximum", "pattern", "minLength", "maxLength"):
            if key in schema:
                out[key] = schema[key]
        if out["type"] == "integer":
            out.setdefault("format", "int64")
    elif not schema or schema.get("x-kubernetes-preserve-unknown-fields"):
        out = {"x-kubernetes-preserve-unknown-fields": True}
    else:
        raise ValueError(f"unsupported schema fragment {schema}")

    if description:
        out["description"] = " ".join(description.split())
    for key, value in extensions.items():
        out[key] = value
    return out


def object_schema(model: type[BaseModel], *, require_spec: bool) -> JsonSchema:
    """The openAPIV3Schema of a top-level kind: apiVersion, kind, metadata, spec, status."""
    full = model.model_json_schema(by_alias=True, mode="validation")
    defs = full.get("$defs", {})
    properties = full["properties"]
    schema: JsonSchema = {
        "type": "object",
        "description": " ".join((model.__doc__ or "").split()),
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": _structural(properties["spec"], defs),
            "status": _structural(properties["status"], defs),
        },
    }
    if require_spec:
        schema["required"] = ["spec"]
    return schema


BUILD_COLUMNS = [
    {"name": "Registered", "type": "string", "jsonPath": ".status.registered",
     "description": "The register status of the Build"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason",
     "description": "The reason of the registered Build, either an error or succeed message"},
    {"name": "BuildStrategyKind", "type": "string", "jsonPath": ".spec.strategy.kind",
     "description": "The BuildStrategy type which is used for this Build"},
    {"name": "BuildStrategyName", "type": "string", "jsonPath": ".spec.strategy.name",
     "description": "The BuildStrategy name which is used for this Build"},
    {"name": "CreationTime", "type": "date", "jsonPath": ".metadata.creationTimestamp",
     "description": "The create time of this Build"},
    {"name": "LastTriggeredRun", "type": "string", "jsonPath": ".status.lastTriggeredRun.name",
     "description": "The BuildRun a trigger (Git webhook or image update) started last"},
]  # fmt: skip

BUILDRUN_COLUMNS = [
    {"name": "Succeeded", "type": "string",
     "jsonPath": '.status.conditions[?(@.type=="Succeeded")].status',
     "description": "The Succeeded status of the BuildRun"},
    {"name": "Reason", "type": "string",
     "jsonPath": '.status.conditions[?(@.type=="Succeeded")].reason',
     "description": "The Succeeded reason of the BuildRun"},
    {"name": "StartTime", "type": "date", "jsonPath": ".status.startTime",
     "description": "The start time of this BuildRun"},
    {"name": "CompletionTime", "type": "date", "jsonPath": ".status.completionTime",
     "description": "The completion time of this BuildRun"},
]  # fmt: skip

KINDS: list[dict[str, Any]] = [
    {"kind": "Build", "plural": "builds", "scope": "Namespaced", "short": [],
     "models": (v1alpha1.Build, v1beta1.Build), "columns": BUILD_COLUMNS, "require_spec": True},
    {"kind": "BuildRun", "plural": "buildruns", "scope": "Namespaced", "short": ["br", "brs"],
     "models": (v1alpha1.BuildRun, v1beta1.BuildRun), "columns": BUILDRUN_COLUMNS,
     "require_spec": True},
    {"kind": "BuildStrategy", "plural": "buildstrategies", "scope": "Namespaced",
     "short": ["bs", "bss"], "models": (v1alpha1.BuildStrategy, v1beta1.BuildStrategy),
     "columns": [], "require_spec": False},
    {"kind": "ClusterBuildStrategy", "plural": "clusterbuildstrategies", "scope": "Cluster",
     "short": ["cbs", "cbss"], "models": (v1alpha1.BuildStrategy, v1beta1.ClusterBuildStrategy),
     "columns": [], "require_spec": False},
]  # fmt: skip


def crd(entry: dict[str, Any], webhook_url: str | None = None) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, both versions, v1beta1 stored.

    With `webhook_url` the conversion webhook is addressed by URL instead of the in-cluster
    Service: a local control plane has no Service routing, and re-applying the Service form
    over a URL set earlier would leave both (which the apiserver rejects)."""
    alpha_model, beta_model = entry["models"]
    versions = []
    for name, model, storage in (("v1alpha1", alpha_model, False), ("v1beta1", beta_model, True)):
        version: dict[str, Any] = {
            "name": name,
            "served": True,
            "storage": storage,
            "schema": {
                "openAPIV3Schema": object_schema(model, require_spec=entry["require_spec"])
            },
            "subresources": {"status": {}},
        }
        if entry["columns"]:
            version["additionalPrinterColumns"] = entry["columns"]
        versions.append(version)
    names: dict[str, Any] = {
        "kind": entry["kind"],
        "listKind": f"{entry['kind']}List",
        "plural": entry["plural"],
        "singular": entry["kind"].lower(),
    }
    if entry["short"]:
        names["shortNames"] = entry["short"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{entry['plural']}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "buildwright"},
        },
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": entry["scope"],
            # v1beta1 is stored; v1alpha1 objects are converted by the operator's webhook. The
            # operator injects the CA bundle (and, on a local control plane, a URL) at start-up.
            # Until it runs, v1beta1 works and v1alpha1 requests fail instead of losing fields.
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": webhook_url}
                    if webhook_url
                    else {"service": dict(CONVERSION_SERVICE)},
                },
            },
            "versions": versions,
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    header = "# Generated by `make crds` from operator/buildwright/api; do not edit.\n"
    return {
        f"{entry['plural']}.{GROUP}.yaml": header
        + yaml.safe_dump(crd(entry), sort_keys=False, width=100)
        for entry in KINDS
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--webhook-url"] and len(argv) == 2:
        # For a local control plane: print the CRDs addressing the webhook by URL.
        print("---\n".join(yaml.safe_dump(crd(e, argv[1]), sort_keys=False) for e in KINDS))
        return 0
    target = Path(argv[0] if argv else "crds")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (target / name).write_text(text)
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
