"""The CRDs in crds/ are what the models generate, and they accept and reject what they should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from buildwright.api import crdgen
from tests.structural import structural_errors

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "examples"


def _crds() -> dict[str, dict[str, Any]]:
    crds = {}
    for path in sorted((ROOT / "crds").glob("*.shipwright.io.yaml")):
        doc = yaml.safe_load(path.read_text())
        crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def _schema(kind: str, version: str) -> dict[str, Any]:
    for entry in _crds()[kind]["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


def _examples(version: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / f"{version}.yaml").read_text()) if doc]


def test_committed_crds_match_the_models() -> None:
    rendered = crdgen.render_all()
    committed = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.shipwright.io.yaml")}
    assert committed == rendered, "crds/ is stale: run `make crds` and commit the result"


def test_kubectl_surface_matches_the_spec() -> None:
    crds = _crds()
    assert set(crds) == {"Build", "BuildRun", "BuildStrategy", "ClusterBuildStrategy"}
    assert crds["BuildRun"]["spec"]["names"]["shortNames"] == ["br", "brs"]
    assert crds["BuildStrategy"]["spec"]["names"]["shortNames"] == ["bs", "bss"]
    assert crds["ClusterBuildStrategy"]["spec"]["names"]["shortNames"] == ["cbs", "cbss"]
    assert "shortNames" not in crds["Build"]["spec"]["names"]
    assert crds["ClusterBuildStrategy"]["spec"]["scope"] == "Cluster"
    for crd in crds.values():
        versions = {v["name"]: v for v in crd["spec"]["versions"]}
        assert versions["v1beta1"]["storage"] is True and versions["v1beta1"]["served"] is True
        assert versions["v1alpha1"]["storage"] is False and versions["v1alpha1"]["served"] is True
        assert all(v["subresources"] == {"status": {}} for v in versions.values())
    build_columns = crds["Build"]["spec"]["versions"][1]["additionalPrinterColumns"]
    assert [c["name"].upper() for c in build_columns] == [
        "REGISTERED", "REASON", "BUILDSTRATEGYKIND", "BUILDSTRATEGYNAME", "CREATIONTIME",
        "LASTTRIGGEREDRUN",  # buildwright's: the run spec.trigger started last
    ]  # fmt: skip
    run_columns = crds["BuildRun"]["spec"]["versions"][1]["additionalPrinterColumns"]
    assert [c["name"].upper() for c in run_columns] == [
        "SUCCEEDED", "REASON", "STARTTIME", "COMPLETIONTIME",
    ]  # fmt: skip


def _no_forbidden_constructs(schema: Any, path: str = "") -> list[str]:
    """Structural-schema rules the apiserver enforces when a CRD is created."""
    problems: list[str] = []
    if isinstance(schema, dict):
        for banned in ("anyOf", "oneOf", "allOf", "$ref", "default", "title", "nullable"):
            if banned in schema:
                problems.append(f"{path}: {banned}")
        if "properties" in schema and "additionalProperties" in schema:
            problems.append(f"{path}: properties and additionalProperties")
        typed = "type" in schema or schema.get("x-kubernetes-int-or-string") or schema.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if path and not typed and ("properties" in schema or "items" in schema):
            problems.append(f"{path}: no type")
        for key, value in schema.items():
            if key in ("properties",):
                for name, sub in value.items():
                    problems.extend(_no_forbidden_constructs(sub, f"{path}.{name}"))
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                problems.extend(_no_forbidden_constructs(value, f"{path}[{key}]"))
    return problems


@pytest.mark.parametrize("kind", ["Build", "BuildRun", "BuildStrategy", "ClusterBuildStrategy"])
@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_schemas_are_structural(kind: str, version: str) -> None:
    assert _no_forbidden_constructs(_schema(kind, version)) == []


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_every_example_validates_against_its_version(version: str) -> None:
    examples = _examples(version)
    assert len(examples) >= 5
    for doc in examples:
        assert doc["apiVersion"] == f"shipwright.io/{version}"
        errors = structural_errors(doc, _schema(doc["kind"], version))
        assert errors == [], f"{doc['kind']} {doc['metadata']}: {errors}"


def test_examples_cover_every_field_group() -> None:
    text = (EXAMPLES / "v1beta1.yaml").read_text()
    for field in (
        "type: Git", "type: OCI", "type: Local", "configMapValue", "secretValue", "values:",
        "pushSecret", "annotations", "labels", "timestamp", "vulnerabilityScan", "platforms",
        "retention", "nodeSelector", "tolerations", "schedulerName", "runtimeClassName",
        "stepResources", "trigger", "build:\n    spec:", "securityContext", "overridable",
        "parameters", "serviceAccount: .generate", "state: BuildRunCanceled",
    ):  # fmt: skip
        assert field in text, field


BAD_BUILDS = [
    ({"strategy": {"name": "k"}, "output": {"image": 7}}, "spec.output.image: expected string"),
    ({"strategy": {"name": "k"}, "output": {"image": "i", "pushSecrets": "p"}},
     'spec.output.pushSecrets: unknown field "pushSecrets"'),
    ({"strategy": {"name": "k"}}, "spec.output: Required value"),
    ({"strategy": {"name": "k"}, "output": {"image": "i"}, "source": {"type": "Svn"}},
     "spec.source.type: unsupported value 'Svn'"),
    ({"strategy": {"name": "k"}, "output": {"image": "i"},
      "retention": {"failedLimit": 0}}, "spec.retention.failedLimit: must be >= 1"),
    ({"strategy": {"name": "k"}, "output": {"image": "i"},
      "source": {"type": "Git", "git": {"revision": "main"}}}, "spec.source.git.url: Required"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), BAD_BUILDS)
def test_invalid_builds_are_rejected_naming_the_field(spec: dict[str, Any], expected: str) -> None:
    doc = {"apiVersion": "shipwright.io/v1beta1", "kind": "Build", "metadata": {}, "spec": spec}
    errors = structural_errors(doc, _schema("Build", "v1beta1"))
    assert any(expected in e for e in errors), errors


def test_book_build_is_rejected_by_v1beta1_but_accepted_by_v1alpha1() -> None:
    book = _examples("v1alpha1")[0]
    assert structural_errors(book, _schema("Build", "v1alpha1")) == []
    beta_errors = structural_errors(book, _schema("Build", "v1beta1"))
    assert any('unknown field "url"' in e for e in beta_errors)
    assert any('unknown field "credentials"' in e for e in beta_errors)


def test_models_accept_the_examples() -> None:
    from buildwright.api import v1alpha1, v1beta1

    models: dict[tuple[str, str], Any] = {
        ("v1beta1", "Build"): v1beta1.Build,
        ("v1beta1", "BuildRun"): v1beta1.BuildRun,
        ("v1beta1", "BuildStrategy"): v1beta1.BuildStrategy,
        ("v1beta1", "ClusterBuildStrategy"): v1beta1.ClusterBuildStrategy,
        ("v1alpha1", "Build"): v1alpha1.Build,
        ("v1alpha1", "BuildRun"): v1alpha1.BuildRun,
        ("v1alpha1", "ClusterBuildStrategy"): v1alpha1.BuildStrategy,
    }
    for version in ("v1alpha1", "v1beta1"):
        for doc in _examples(version):
            model = models[(version, doc["kind"])].model_validate(doc)
            assert model.to_wire() == doc
