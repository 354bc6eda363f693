"""The image-processing step against a real ``docker-registry`` on loopback.

Images are made here from scratch: a one-file layer tar, a config with the right diff_ids, and
either an OCI image layout or a docker-archive tarball. After each run the test fetches what
the registry holds over plain HTTP (and with skopeo when installed) and compares it with the
result files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from buildwright.steps import image_processing
from buildwright.steps.registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    RegistryError,
    credentials_for,
    parse_challenge,
    parse_reference,
)
from tests.registry import (
    REGISTRY_PASSWORD,
    REGISTRY_USERNAME,
    LocalRegistry,
    TokenAuthProxy,
    free_port,
    registry,
    registry_auth,
    registry_token,
)

__all__ = ["registry", "registry_auth", "registry_token"]  # fixtures used by name

SKOPEO = shutil.which("skopeo")
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX,
                    "application/vnd.docker.distribution.manifest.v2+json"))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# --- building images -------------------------------------------------------------------------


def layer_tar(content: bytes = b"hello from buildwright\n", name: str = "hello.txt") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 1_700_000_000
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def config_for(diff_ids: list[str], labels: dict[str, str] | None = None) -> bytes:
    return compact({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": {"Cmd": ["/hello.txt"], "Labels": labels or {"from": "strategy"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-05-06T07:08:09Z", "created_by": "COPY hello.txt /"}],
    })


def put_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def image_in_layout(layout: Path, content: bytes = b"hello\n",
                    platform: str = "amd64") -> dict[str, Any]:
    """Write layer, config and manifest blobs; returns the manifest's descriptor."""
    tar = layer_tar(content)
    layer = gzip.compress(tar, mtime=0)
    config = json.loads(config_for([sha256(tar)]))
    config["architecture"] = platform
    config_descriptor = put_blob(layout, compact(config))
    layer_descriptor = put_blob(layout, layer)
    manifest = compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config_descriptor},
        "layers": [{"mediaType": OCI_LAYER_GZIP, **layer_descriptor}],
    })
    return {"mediaType": OCI_MANIFEST, **put_blob(layout, manifest),
            "platform": {"os": "linux", "architecture": platform}}


def write_layout(layout: Path, entries: list[dict[str, Any]]) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )


def oci_layout(directory: Path, content: bytes = b"hello\n") -> str:
    """A layout holding one image; returns its manifest digest."""
    descriptor = image_in_layout(directory, content)
    descriptor.pop("platform")
    write_layout(directory, [descriptor])
    return str(descriptor["digest"])


def docker_archive(directory: Path, tar: bytes, wrong_diff_id: bool = False) -> Path:
    """``image.tar`` as ``docker save`` writes it: uncompressed ``<id>/layer.tar``."""
    directory.mkdir(parents=True, exist_ok=True)
    diff_id = sha256(b"not the layer") if wrong_diff_id else sha256(tar)
    config = config_for([diff_id])
    config_name = sha256(config).split(":")[1] + ".json"
    manifest = compact([{"Config": config_name, "RepoTags": ["x/y:latest"],
                         "Layers": ["0123abcd/layer.tar"]}])
    path = directory / "image.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in ((config_name, config), ("0123abcd/layer.tar", tar),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# --- running the step and reading the registry -----------------------------------------------


class Run:
    def __init__(self, code: int, out: str, err: str, results: Path) -> None:
        self.code, self.out, self.err, self.results = code, out, err, results

    def result(self, name: str) -> str:
        return (self.results / name).read_text()


def run_step(capsys: pytest.CaptureFixture[str], tmp_path: Path, image: str,
             *args: str, insecure: bool = True) -> Run:
    results = tmp_path / "results"
    argv = [
        *args, "--image", image, f"--insecure={'true' if insecure else 'false'}",
        "--result-file-image-digest", str(results / "shp-image-digest"),
        "--result-file-image-size", str(results / "shp-image-size"),
        "--result-file-image-vulnerabilities", str(results / "shp-image-vulnerabilities"),
    ]
    code = image_processing.main(argv)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err, results)


def fetch(host: str, path: str, accept: str = ACCEPT,
          credentials: tuple[str, str] | None = None) -> tuple[bytes, str]:
    request = urllib.request.Request(f"http://{host}{path}", headers={"Accept": accept})
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read(), answer.headers.get("Content-Type", "")


def manifest_of(host: str, repository: str, reference: str,
                credentials: tuple[str, str] | None = None) -> tuple[bytes, dict[str, Any]]:
    raw, _ = fetch(host, f"/v2/{repository}/manifests/{reference}", credentials=credentials)
    return raw, json.loads(raw)


def config_of(host: str, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
    raw, _ = fetch(host, f"/v2/{repository}/blobs/{manifest['config']['digest']}")
    assert sha256(raw) == manifest["config"]["digest"]
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def skopeo_inspect(reference: str) -> dict[str, Any] | None:
    if SKOPEO is None:
        return None
    done = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{reference}"],
                          capture_output=True, text=True, check=True, timeout=60)
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


# --- pushing from the output directory -------------------------------------------------------


def test_push_oci_layout_keeps_the_strategys_digest(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    digest = oci_layout(layout)

    run = run_step(capsys, tmp_path, f"{registry.host}/x/y:v1", "--push", str(layout))

    assert run.code == 0, run.err
    assert run.result("shp-image-digest") == digest
    raw, manifest = manifest_of(registry.host, "x/y", "v1")
    assert sha256(raw) == digest
    expected_size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert run.result("shp-image-size") == str(expected_size)
    assert "pushed 2 blob(s), 0 already present" in run.out
    assert not (run.results / "shp-image-vulnerabilities").exists()
    inspected = skopeo_inspect(f"{registry.host}/x/y:v1")
    if inspected is not None:
        assert inspected["Digest"] == digest


def test_second_push_skips_blobs_the_registry_has(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    first = run_step(capsys, tmp_path, f"{registry.host}/x/y:one", "--push", str(layout))
    second = run_step(capsys, tmp_path, f"{registry.host}/x/y:two", "--push", str(layout))

    assert first.code == second.code == 0
    assert "pushed 0 blob(s), 2 already present" in second.out


def test_docker_archive_becomes_an_oci_image_with_gzip_layers(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tar = layer_tar()
    directory = tmp_path / "output-image"
    docker_archive(directory, tar, wrong_diff_id=True)

    run = run_step(capsys, tmp_path, f"{registry.host}/x/archive:latest", "--push",
                   str(directory))

    assert run.code == 0, run.err
    raw, manifest = manifest_of(registry.host, "x/archive", "latest")
    assert run.result("shp-image-digest") == sha256(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == OCI_LAYER_GZIP
    blob, _ = fetch(registry.host, f"/v2/x/archive/blobs/{layer['digest']}")
    assert sha256(blob) == layer["digest"]
    assert gzip.decompress(blob) == tar
    config = config_of(registry.host, "x/archive", manifest)
    assert config["rootfs"]["diff_ids"] == [sha256(tar)]
    assert config["config"]["Labels"] == {"from": "strategy"}
    assert "corrected" in run.out


def test_docker_archive_with_gzipped_layers_as_kaniko_writes(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tar = layer_tar(b"kaniko\n")
    packed = gzip.compress(tar, mtime=0)
    directory = tmp_path / "output-image"
    directory.mkdir()
    config = config_for([sha256(tar)])
    with tarfile.open(directory / "image.tar", "w") as archive:
        for name, data in (("sha256:" + sha256(config).split(":")[1], config),
                           (sha256(packed).split(":")[1] + ".tar.gz", packed),
                           ("manifest.json", compact([{
                               "Config": "sha256:" + sha256(config).split(":")[1],
                               "RepoTags": None,
                               "Layers": [sha256(packed).split(":")[1] + ".tar.gz"]}]))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

    run = run_step(capsys, tmp_path, f"{registry.host}/x/kaniko:v", "--push", str(directory))

    assert run.code == 0, run.err
    _, manifest = manifest_of(registry.host, "x/kaniko", "v")
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256(packed)]
    assert manifest["config"]["digest"] == sha256(config)  # diff_ids were right: untouched


def test_same_docker_archive_gives_the_same_digest(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tar = layer_tar()
    docker_archive(tmp_path / "a", tar)
    docker_archive(tmp_path / "b", tar)
    first = run_step(capsys, tmp_path / "ra", f"{registry.host}/x/r:a", "--push",
                     str(tmp_path / "a"), "--label", "k=v")
    second = run_step(capsys, tmp_path / "rb", f"{registry.host}/x/r:b", "--push",
                      str(tmp_path / "b"), "--label", "k=v")
    assert first.code == second.code == 0
    assert first.result("shp-image-digest") == second.result("shp-image-digest")


def test_oci_archive_tarball_is_pushed(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "layout"
    digest = oci_layout(layout)
    directory = tmp_path / "output-image"
    directory.mkdir()
    with tarfile.open(directory / "image.tar", "w") as archive:
        for path in sorted(layout.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(layout)), recursive=False)

    run = run_step(capsys, tmp_path, f"{registry.host}/x/ociarchive:v", "--push",
                   str(directory))

    assert run.code == 0, run.err
    assert run.result("shp-image-digest") == digest


def test_mutations_are_applied_when_pushing(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    original = oci_layout(layout)

    run = run_step(
        capsys, tmp_path, f"{registry.host}/x/mutated:v1", "--push", str(layout),
        "--annotation", "org.opencontainers.image.source=https://example.test/repo",
        "--annotation", "team=a=b", "--label", "maintainer=team-a", "--label", "from=build",
        "--image-timestamp", "1700000000",
    )

    assert run.code == 0, run.err
    raw, manifest = manifest_of(registry.host, "x/mutated", "v1")
    digest = run.result("shp-image-digest")
    assert digest == sha256(raw) != original
    assert manifest["annotations"] == {
        "org.opencontainers.image.source": "https://example.test/repo", "team": "a=b",
    }
    config = config_of(registry.host, "x/mutated", manifest)
    assert config["config"]["Labels"] == {"from": "build", "maintainer": "team-a"}
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert [entry["created"] for entry in config["history"]] == ["2023-11-14T22:13:20Z"]
    inspected = skopeo_inspect(f"{registry.host}/x/mutated:v1")
    if inspected is not None:
        assert inspected["Digest"] == digest
        assert inspected["Labels"]["maintainer"] == "team-a"
        assert inspected["Created"].startswith("2023-11-14T22:13:20")


def test_timestamp_from_file_and_reproducible_digest(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    stamp = tmp_path / "shp-source-default-source-timestamp"
    stamp.write_text("0\n")
    first = run_step(capsys, tmp_path, f"{registry.host}/x/t:a", "--push", str(layout),
                     "--image-timestamp-file", str(stamp))
    second = run_step(capsys, tmp_path, f"{registry.host}/x/t:b", "--push", str(layout),
                      "--image-timestamp", "0")

    assert first.code == second.code == 0, first.err
    assert first.result("shp-image-digest") == second.result("shp-image-digest")
    _, manifest = manifest_of(registry.host, "x/t", "a")
    assert config_of(registry.host, "x/t", manifest)["created"] == "1970-01-01T00:00:00Z"


def test_index_layout_pushes_every_image_and_annotates_all(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    amd = image_in_layout(layout, b"amd\n", "amd64")
    arm = image_in_layout(layout, b"arm\n", "arm64")
    index = put_blob(layout, compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                      "manifests": [amd, arm]}))
    write_layout(layout, [{"mediaType": OCI_INDEX, **index}])

    run = run_step(capsys, tmp_path, f"{registry.host}/x/multi:v1", "--push", str(layout),
                   "--annotation", "a=1", "--label", "l=2")

    assert run.code == 0, run.err
    raw, pushed = manifest_of(registry.host, "x/multi", "v1")
    assert run.result("shp-image-digest") == sha256(raw)
    assert pushed["mediaType"] == OCI_INDEX
    assert pushed["annotations"] == {"a": "1"}
    platforms = []
    for descriptor in pushed["manifests"]:
        child_raw, child = manifest_of(registry.host, "x/multi", descriptor["digest"])
        assert sha256(child_raw) == descriptor["digest"]
        assert child["annotations"] == {"a": "1"}
        assert config_of(registry.host, "x/multi", child)["config"]["Labels"]["l"] == "2"
        platforms.append(descriptor["platform"]["architecture"])
    assert platforms == ["amd64", "arm64"]


# --- mutation only (strategy-managed push) ---------------------------------------------------


def test_mutation_only_repushes_under_the_same_tag_with_a_new_digest(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    image = f"{registry.host}/x/strategy:latest"
    pushed = run_step(capsys, tmp_path / "first", image, "--push", str(layout))
    assert pushed.code == 0, pushed.err
    before = pushed.result("shp-image-digest")
    _, old_manifest = manifest_of(registry.host, "x/strategy", "latest")

    run = run_step(capsys, tmp_path, image, "--label", "stage=mutated",
                   "--annotation", "note=added")

    assert run.code == 0, run.err
    after = run.result("shp-image-digest")
    assert after != before
    raw, manifest = manifest_of(registry.host, "x/strategy", "latest")
    assert sha256(raw) == after
    assert manifest["annotations"] == {"note": "added"}
    assert manifest["layers"] == old_manifest["layers"]
    assert config_of(registry.host, "x/strategy", manifest)["config"]["Labels"] == {
        "from": "strategy", "stage": "mutated",
    }
    assert "pushed 1 blob(s)" in run.out  # only the new config
    inspected = skopeo_inspect(image)
    if inspected is not None:
        assert inspected["Digest"] == after


def test_mutation_only_converts_a_docker_manifest_to_oci(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    pushed = run_step(capsys, tmp_path / "first", f"{registry.host}/x/docker:oci", "--push",
                      str(layout))
    assert pushed.code == 0, pushed.err
    _, oci = manifest_of(registry.host, "x/docker", "oci")
    docker = compact({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {**oci["config"],
                   "mediaType": "application/vnd.docker.container.image.v1+json"},
        "layers": [{**layer, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
                   for layer in oci["layers"]],
    })
    request = urllib.request.Request(
        f"http://{registry.host}/v2/x/docker/manifests/v2s2", data=docker, method="PUT",
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    urllib.request.urlopen(request, timeout=10).close()

    run = run_step(capsys, tmp_path, f"{registry.host}/x/docker:v2s2", "--annotation", "k=v")

    assert run.code == 0, run.err
    raw, manifest = manifest_of(registry.host, "x/docker", "v2s2")
    assert run.result("shp-image-digest") == sha256(raw) != sha256(docker)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"] == oci["config"]
    assert manifest["layers"] == oci["layers"]
    assert manifest["annotations"] == {"k": "v"}


def test_mutation_only_without_mutations_reports_the_existing_digest(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    digest = oci_layout(layout)
    image = f"{registry.host}/x/same:latest"
    assert run_step(capsys, tmp_path / "first", image, "--push", str(layout)).code == 0

    run = run_step(capsys, tmp_path, image)

    assert run.code == 0, run.err
    assert run.result("shp-image-digest") == digest
    assert "pushed 0 blob(s)" in run.out


def test_mutation_only_of_a_missing_image_fails_clearly(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_step(capsys, tmp_path, f"{registry.host}/x/none:latest", "--label", "a=b")
    assert run.code == 1
    assert "does not exist" in run.err
    assert not (run.results / "shp-image-digest").exists()


# --- credentials -----------------------------------------------------------------------------


def push_secret(directory: Path, host: str, username: str, password: str) -> Path:
    directory.mkdir(parents=True)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (directory / ".dockerconfigjson").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory


def test_htpasswd_registry_accepts_the_push_secret(
    registry_auth: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    digest = oci_layout(layout)
    secret = push_secret(tmp_path / "secret", registry_auth.host, REGISTRY_USERNAME,
                         REGISTRY_PASSWORD)

    run = run_step(capsys, tmp_path, f"{registry_auth.host}/x/private:v1", "--push",
                   str(layout), "--secret-path", str(secret), "--label", "x=y")

    assert run.code == 0, run.err
    raw, _ = manifest_of(registry_auth.host, "x/private", "v1",
                         credentials=(REGISTRY_USERNAME, REGISTRY_PASSWORD))
    assert run.result("shp-image-digest") == sha256(raw) != digest
    assert REGISTRY_PASSWORD not in run.out + run.err


def test_wrong_password_fails_without_leaking_it(
    registry_auth: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    wrong = "Wrong-pa55word-must-not-show"
    secret = push_secret(tmp_path / "secret", f"https://{registry_auth.host}/v2/",
                         REGISTRY_USERNAME, wrong)

    run = run_step(capsys, tmp_path, f"{registry_auth.host}/x/private:v1", "--push",
                   str(layout), "--secret-path", str(secret))

    assert run.code == 1
    assert "authentication failed" in run.err
    assert "refused the configured credentials" in run.err
    assert wrong not in run.out + run.err
    assert base64.b64encode(f"{REGISTRY_USERNAME}:{wrong}".encode()).decode() not in run.err
    assert not (run.results / "shp-image-digest").exists()


def test_no_credentials_for_a_protected_registry(
    registry_auth: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    layout = tmp_path / "output-image"
    oci_layout(layout)

    run = run_step(capsys, tmp_path, f"{registry_auth.host}/x/private:v1", "--push",
                   str(layout))

    assert run.code == 1
    assert "no credentials" in run.err


def test_docker_config_from_the_environment(
    registry_auth: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"auths": {registry_auth.host: {
        "username": REGISTRY_USERNAME, "password": REGISTRY_PASSWORD}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    layout = tmp_path / "output-image"
    digest = oci_layout(layout)

    run = run_step(capsys, tmp_path, f"{registry_auth.host}/x/env:v1", "--push", str(layout))

    assert run.code == 0, run.err
    assert run.result("shp-image-digest") == digest


def test_bearer_token_flow(
    registry_token: TokenAuthProxy, registry: LocalRegistry, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    digest = oci_layout(layout)
    secret = push_secret(tmp_path / "secret", registry_token.host, REGISTRY_USERNAME,
                         REGISTRY_PASSWORD)

    run = run_step(capsys, tmp_path, f"{registry_token.host}/x/token:v1", "--push",
                   str(layout), "--secret-path", str(secret))

    assert run.code == 0, run.err
    assert run.result("shp-image-digest") == digest
    raw, _ = manifest_of(registry.host, "x/token", "v1")  # behind the proxy, unprotected
    assert sha256(raw) == digest
    [first, *_] = registry_token.token_requests
    assert first["service"] == ["buildwright-tests"]
    assert "repository:x/token:pull,push" in first["scope"]


def test_bearer_token_refused_for_wrong_password(
    registry_token: TokenAuthProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    secret = push_secret(tmp_path / "secret", registry_token.host, REGISTRY_USERNAME, "nope-x1")

    run = run_step(capsys, tmp_path, f"{registry_token.host}/x/token:v1", "--push",
                   str(layout), "--secret-path", str(secret))

    assert run.code == 1
    assert "token service" in run.err and "refused the credentials" in run.err
    assert "nope-x1" not in run.out + run.err


# --- failures and odd inputs -----------------------------------------------------------------


def test_unreachable_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    run = run_step(capsys, tmp_path, f"127.0.0.1:{free_port()}/x/y:v1", "--push", str(layout))
    assert run.code == 1
    assert "cannot reach registry" in run.err


def test_plain_http_registry_needs_insecure(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    run = run_step(capsys, tmp_path, f"{registry.host}/x/y:v1", "--push", str(layout),
                   insecure=False)
    assert run.code == 1
    assert "insecure" in run.err


@pytest.mark.parametrize("setup", ["missing", "empty", "broken-layout"])
def test_no_usable_image_in_the_output_directory(
    setup: str, registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "output-image"
    if setup == "empty":
        directory.mkdir()
    elif setup == "broken-layout":
        oci_layout(directory)
        shutil.rmtree(directory / "blobs")
    run = run_step(capsys, tmp_path, f"{registry.host}/x/y:v1", "--push", str(directory))
    assert run.code == 1
    expected = {"missing": "does not exist", "empty": "found no image",
                "broken-layout": "lacks blob"}[setup]
    assert expected in run.err


def test_vulnerability_scan_is_reported_as_unavailable(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    layout = tmp_path / "output-image"
    oci_layout(layout)
    run = run_step(capsys, tmp_path, f"{registry.host}/x/y:v1", "--push", str(layout),
                   "--vuln-settings", '{"enabled":true,"failOnFinding":true}',
                   "--vuln-count-limit", "10")
    assert run.code == 0, run.err
    assert "not scanned" in run.out.lower()
    assert run.result("shp-image-vulnerabilities") == ""


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert image_processing.main(["--push", str(tmp_path)]) == image_processing.EXIT_NO_IMAGE
    run = run_step(capsys, tmp_path, "127.0.0.1:1/x/y:v", "--label", "novalue")
    assert run.code == 1 and "key=value" in run.err
    run = run_step(capsys, tmp_path, "127.0.0.1:1/x/y:v", "--image-timestamp", "soon")
    assert run.code == 1 and "not a number" in run.err
    run = run_step(capsys, tmp_path, "127.0.0.1:1/x/y:v", "--image-timestamp", "1",
                   "--image-timestamp-file", str(tmp_path / "f"))
    assert run.code == 1 and "mutually exclusive" in run.err


# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/x/y:tag", ("127.0.0.1:5000", "x/y", "tag", None)),
    ("localhost/app", ("localhost", "app", "latest", None)),
    ("busybox", ("docker.io", "library/busybox", "latest", None)),
    ("index.docker.io/me/app:1.0", ("docker.io", "me/app", "1.0", None)),
    ("quay.io/org/app@sha256:" + "a" * 64, ("quay.io", "org/app", None, "sha256:" + "a" * 64)),
    ("ghcr.io/org/app:v1@sha256:" + "b" * 64, ("ghcr.io", "org/app", "v1", "sha256:" + "b" * 64)),
])
def test_parse_reference(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    parsed = parse_reference(text)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == expected


@pytest.mark.parametrize("text", ["", "Upper/Case", "x/y:bad tag", "https://host/x", "x@sha256:1"])
def test_parse_reference_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(text)


def test_credentials_match_hosts_however_written() -> None:
    auth = base64.b64encode(b"me:pa:ss").decode()
    config = {"auths": {"https://index.docker.io/v1/": {"auth": auth},
                        "http://reg.example:5000/v2/": {"username": "u", "password": "p"}}}
    assert credentials_for(config, "docker.io") == ("me", "pa:ss")
    assert credentials_for(config, "reg.example:5000") == ("u", "p")
    assert credentials_for(config, "other.example") is None
    with pytest.raises(RegistryError):
        credentials_for({"auths": {"x.example": {"auth": base64.b64encode(b"nocolon").decode()}}},
                        "x.example")


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_no_mutation_keeps_bytes_and_labels_merge() -> None:
    config = config_for([sha256(b"x")])
    assert image_processing.mutate_config(config, {}, None) is config
    changed = json.loads(image_processing.mutate_config(config, {"new": "1"}, None))
    assert changed["config"]["Labels"] == {"from": "strategy", "new": "1"}
    assert changed["created"] == "2024-05-06T07:08:09Z"
