"""The bundle step against a real ``docker-registry`` on loopback.

Each test builds its layers here (tar entries written one by one, so whiteouts, links and
hostile names are exactly what the test says), pushes them with the project's registry client,
runs the step as the Pod does and checks the unpacked tree, the result files and the registry.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from buildwright.core.pod import sequenced_step
from buildwright.steps import bundle
from buildwright.steps.__main__ import main as step_main
from buildwright.steps.registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    RegistryClient,
    sha256_digest,
)
from tests.registry import (
    REGISTRY_PASSWORD,
    REGISTRY_USERNAME,
    LocalRegistry,
    free_port,
    registry,
    registry_auth,
)
from tests.unit.test_pod import BOOK_BUILD, container, render

__all__ = ["registry", "registry_auth"]  # fixtures used by name

ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
NEWEST = 1_700_000_123


# --- building and pushing bundles ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    name: str
    content: bytes = b""
    kind: bytes = tarfile.REGTYPE
    link: str = ""
    mtime: int = 1_600_000_000
    mode: int = 0o644


def directory(name: str) -> Entry:
    return Entry(name, kind=tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, kind=tarfile.SYMTYPE, link=target, mode=0o777)


def layer(*entries: Entry) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.kind
            info.mode = entry.mode
            info.mtime = entry.mtime
            info.linkname = entry.link
            if entry.kind == tarfile.REGTYPE:
                info.size = len(entry.content)
                archive.addfile(info, io.BytesIO(entry.content))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def client_for(host: str, repository: str,
               credentials: tuple[str, str] | None = None) -> RegistryClient:
    return RegistryClient(registry=host, repository=repository, credentials=credentials,
                          insecure=True)


def push_manifest_document(client: RegistryClient, blobs: list[bytes],
                           document: dict[str, Any], reference: str, media_type: str) -> str:
    for blob in blobs:
        client.upload_blob(sha256_digest(blob), len(blob), blob)
    body = json.dumps(document, separators=(",", ":")).encode()
    return client.put_manifest(reference, body, media_type)


def image_document(client: RegistryClient, layers: list[bytes],
                   created: str = "1970-01-01T00:00:00Z",
                   architecture: str = "amd64") -> tuple[dict[str, Any], list[bytes]]:
    """An OCI manifest for the layers (gzip ones by their magic); blobs to upload with it."""
    config = json.dumps({
        "architecture": architecture, "os": "linux", "created": created,
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {},
    }).encode()
    descriptors = [
        {"mediaType": OCI_LAYER_GZIP if blob[:2] == b"\x1f\x8b" else OCI_LAYER_TAR,
         "digest": sha256_digest(blob), "size": len(blob)}
        for blob in layers
    ]
    document = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": descriptors,
    }
    return document, [config, *layers]


def push_image(host: str, repository: str, tag: str, layers: list[bytes],
               credentials: tuple[str, str] | None = None,
               created: str = "1970-01-01T00:00:00Z") -> str:
    client = client_for(host, repository, credentials)
    document, blobs = image_document(client, layers, created)
    return push_manifest_document(client, blobs, document, tag, OCI_MANIFEST)


def registry_digest(host: str, repository: str, reference: str) -> str | None:
    """What the registry itself says the reference resolves to; None when it is gone."""
    request = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{reference}",
                                     method="HEAD", headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(answer.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


# --- running the step ------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str
    results: Path
    target: Path

    def result(self, name: str) -> str | None:
        path = self.results / name
        return path.read_text() if path.exists() else None

    def reported(self) -> dict[str, str]:
        text = self.result("termination-log")
        return {entry["key"]: entry["value"] for entry in json.loads(text or "[]")}


def run_bundle(capsys: pytest.CaptureFixture[str], tmp_path: Path, image: str,
               *extra: str) -> Run:
    results = tmp_path / "results"
    target = tmp_path / "workspace" / "source"
    argv = [
        "bundle", "--image", image, "--target", str(target),
        "--result-file-image-digest", str(results / "shp-source-default-image-digest"),
        "--result-file-source-timestamp", str(results / "shp-source-default-source-timestamp"),
        "--result-file-error-reason", str(results / "shp-error-reason"),
        "--result-file-error-message", str(results / "shp-error-message"),
        "--termination-log", str(results / "termination-log"),
        *extra,
    ]
    capsys.readouterr()
    code = step_main(argv)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err, results, target)


def tree(root: Path) -> dict[str, str]:
    """Every path below root: file contents, ``-> target`` for links, ``/`` for directories."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[relative] = f"-> {path.readlink()}"
        elif path.is_dir():
            found[relative] = "/"
        else:
            found[relative] = path.read_text()
    return found


# --- pulling and unpacking -------------------------------------------------------------------


def test_layers_unpack_in_order_with_whiteouts(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lower = gzip.compress(layer(
        Entry("./README.md", b"old readme\n"),
        directory("src/"),
        Entry("src/main.py", b"print('hi')\n"),
        Entry("gone.txt", b"deleted by the upper layer\n"),
        directory("vendor"),
        Entry("vendor/old.txt", b"hidden by the opaque whiteout\n"),
        Entry("run.sh", b"#!/bin/sh\n", mode=0o755),
    ), mtime=0)
    upper = layer(  # plain tar, as some tools push
        Entry(".wh.gone.txt"),
        Entry("vendor/.wh..wh..opq"),
        Entry("vendor/new.txt", b"the upper layer's vendor\n"),
        Entry("README.md", b"new readme\n", mtime=NEWEST),
        symlink("docs", "src"),
        Entry("src/main-copy.py", kind=tarfile.LNKTYPE, link="src/main.py"),
    )
    digest = push_image(registry.host, "bundles/app", "v1", [lower, upper])

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/app:v1")

    assert run.code == 0, run.err
    assert tree(run.target) == {
        "README.md": "new readme\n",
        "docs": "-> src",
        "run.sh": "#!/bin/sh\n",
        "src": "/",
        "src/main-copy.py": "print('hi')\n",
        "src/main.py": "print('hi')\n",
        "vendor": "/",
        "vendor/new.txt": "the upper layer's vendor\n",
    }
    assert (run.target / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (run.target / "src" / "main.py").stat().st_mtime == 1_600_000_000
    assert run.result("shp-source-default-image-digest") == digest
    assert registry_digest(registry.host, "bundles/app", "v1") == digest
    # The newest file, not the config's epoch-0 `created` that shp writes into bundles.
    assert run.result("shp-source-default-source-timestamp") == str(NEWEST)
    assert run.result("shp-error-reason") is None
    assert "Unpacking layer 2/2" in run.out


def test_pull_by_digest_and_config_created_when_there_are_no_files(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only_directories = layer(directory("empty"), directory("empty/nested"))
    digest = push_image(registry.host, "bundles/dirs", "v1", [only_directories],
                        created="2024-05-06T07:08:09.123456789Z")

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/dirs@{digest}")

    assert run.code == 0, run.err
    assert tree(run.target) == {"empty": "/", "empty/nested": "/"}
    assert run.result("shp-source-default-image-digest") == digest
    assert run.result("shp-source-default-source-timestamp") == "1714979289"


def test_no_files_and_epoch_zero_created_gives_no_timestamp(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry.host, "bundles/none", "v1", [layer(directory("d"))])
    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/none:v1")
    assert run.code == 0, run.err
    assert run.result("shp-source-default-source-timestamp") is None
    assert "no source timestamp" in run.out


def test_an_index_resolves_to_its_linux_amd64_image(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = client_for(registry.host, "bundles/multi")
    entries = []
    for architecture in ("arm64", "amd64"):
        content = f"built for {architecture}\n".encode()
        document, blobs = image_document(client, [layer(Entry("arch.txt", content))],
                                         architecture=architecture)
        digest = push_manifest_document(client, blobs, document, architecture, OCI_MANIFEST)
        size = len(json.dumps(document, separators=(",", ":")).encode())
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"os": "linux", "architecture": architecture}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    push_manifest_document(client, [], index, "latest", OCI_INDEX)

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/multi")

    assert run.code == 0, run.err
    assert tree(run.target) == {"arch.txt": "built for amd64\n"}
    assert run.result("shp-source-default-image-digest") == entries[1]["digest"]


def test_index_without_linux_amd64_fails() -> None:
    index = {"manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "2" * 64,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    ]}
    with pytest.raises(bundle.BundleError) as raised:
        bundle.select_index_entry(index)
    assert raised.value.reason == "BundlePullFailed"
    assert "it offers: linux/arm64, linux/arm/v7" in raised.value.message
    single = {"manifests": [index["manifests"][0]]}
    assert bundle.select_index_entry(single) is single["manifests"][0]


# --- credentials -----------------------------------------------------------------------------


def pull_secret(directory: Path, host: str, username: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (directory / ".dockerconfigjson").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory


def test_pull_secret_opens_a_protected_registry(
    registry_auth: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = (REGISTRY_USERNAME, REGISTRY_PASSWORD)
    digest = push_image(registry_auth.host, "private/src", "v1",
                        [layer(Entry("secret-source.txt", b"mine\n"))], credentials)
    image = f"{registry_auth.host}/private/src:v1"
    secret = pull_secret(tmp_path / "secret", registry_auth.host, *credentials)

    run = run_bundle(capsys, tmp_path / "with", image, "--secret-path", str(secret))
    assert run.code == 0, run.err
    assert tree(run.target) == {"secret-source.txt": "mine\n"}
    assert run.result("shp-source-default-image-digest") == digest
    assert REGISTRY_PASSWORD not in run.out + run.err

    anonymous = run_bundle(capsys, tmp_path / "without", image)
    assert anonymous.code == 1
    assert anonymous.result("shp-error-reason") == "BundleAuthFailed"
    assert "refused anonymous access to private/src: set the source's ociArtifact.pullSecret" in (
        anonymous.result("shp-error-message") or "")
    assert not anonymous.target.exists() or tree(anonymous.target) == {}

    wrong = pull_secret(tmp_path / "wrong", registry_auth.host, REGISTRY_USERNAME,
                        "not-the-password")
    refused = run_bundle(capsys, tmp_path / "wrong-run", image, "--secret-path", str(wrong))
    assert refused.code == 1
    assert refused.reported()["shp-error-reason"] == "BundleAuthFailed"
    assert "not-the-password" not in refused.out + refused.err

    elsewhere = pull_secret(tmp_path / "elsewhere", "other.example:5000", *credentials)
    mismatch = run_bundle(capsys, tmp_path / "elsewhere-run", image,
                          "--secret-path", str(elsewhere))
    assert mismatch.code == 1
    assert mismatch.result("shp-error-reason") == "BundleAuthFailed"
    assert "credentials for: other.example:5000" in (mismatch.result("shp-error-message") or "")
    assert REGISTRY_PASSWORD not in mismatch.out + mismatch.err


def test_pull_secret_without_dockerconfigjson(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "basic"
    secret.mkdir()
    (secret / "username").write_text("someone")
    run = run_bundle(capsys, tmp_path, f"{registry.host}/x/y:v1", "--secret-path", str(secret))
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundleAuthFailed"
    assert "kubernetes.io/dockerconfigjson" in (run.result("shp-error-message") or "")


# --- refusing hostile layers -----------------------------------------------------------------


HOSTILE_LAYERS = {
    "dot-dot": ([Entry("../escaped.txt", b"x")], "contains '..'"),
    "nested-dot-dot": ([Entry("src/../../escaped.txt", b"x")], "contains '..'"),
    "absolute": ([Entry("/escaped.txt", b"x")], "is an absolute path"),
    "absolute-symlink": ([symlink("etc", "/etc")], "symlink to the absolute path '/etc'"),
    "relative-symlink": ([symlink("up", "../..")], "is a symlink to '../..'"),
    "symlink-through-symlink": ([symlink("here", "."), symlink("here/up", "..")],
                                "is a symlink to '..'"),
    "hardlink-outside": ([Entry("h", kind=tarfile.LNKTYPE, link="../escaped.txt")],
                         "contains '..'"),
    # Each link is harmless when made; only the finished tree shows `l` leading above it.
    "late-symlink-chain": ([symlink("l", "s/.."), symlink("s", ".")],
                           "the symlink 'l' resolves outside"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LAYERS))
def test_layers_that_leave_the_target_are_refused(
    case: str, registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, complaint = HOSTILE_LAYERS[case]
    push_image(registry.host, "bundles/hostile", case, [layer(*entries)])
    before = sorted(path.name for path in tmp_path.iterdir())

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/hostile:{case}")

    assert run.code == 1
    assert run.result("shp-error-reason") == "BundleExtractFailed"
    assert complaint in (run.result("shp-error-message") or "")
    assert run.reported()["shp-error-reason"] == "BundleExtractFailed"
    assert run.result("shp-source-default-image-digest") is None
    # Nothing appeared next to the workspace (the step made only its own directories).
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [*before, "results", "workspace"])
    assert sorted(path.name for path in (tmp_path / "workspace").iterdir()) == ["source"]
    # Nor does the workspace keep a link that leads out of it.
    root = run.target.resolve()
    assert all(path.resolve().is_relative_to(root) for path in run.target.rglob("*")), tree(
        run.target)


def test_writes_through_an_existing_escaping_symlink_are_refused(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "workspace" / "source"
    target.mkdir(parents=True)
    (target / "out").symlink_to(outside)
    push_image(registry.host, "bundles/through", "v1", [layer(Entry("out/planted.txt", b"x"))])

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/through:v1")

    assert run.code == 1
    assert run.result("shp-error-reason") == "BundleExtractFailed"
    assert "leads through a symlink" in (run.result("shp-error-message") or "")
    assert list(outside.iterdir()) == []


def test_opaque_whiteout_keeps_its_own_layers_entries(tmp_path: Path) -> None:
    # Tools should write the opaque marker first, but one that comes after the layer's own
    # entries in the directory must still hide only what the lower layers left.
    target = tmp_path / "source"
    extractor = bundle.Extractor(str(target))
    extractor.apply(io.BytesIO(layer(Entry("d/lower.txt", b"lower"), Entry("keep", b"k"))),
                    "sha256:1")
    extractor.apply(io.BytesIO(layer(Entry("d/sub/upper.txt", b"upper"),
                                     Entry("d/.wh..wh..opq"), Entry(".wh.keep.txt"))),
                    "sha256:2")
    assert tree(target) == {"d": "/", "d/sub": "/", "d/sub/upper.txt": "upper", "keep": "k"}


def test_zstd_layers_are_refused_clearly(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry.host, "bundles/zstd", "v1", [b"\x28\xb5\x2f\xfd" + b"\x00" * 32])
    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/zstd:v1")
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundleExtractFailed"
    assert "zstd" in (run.result("shp-error-message") or "")


def test_a_blob_that_is_not_a_tar_is_refused(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry.host, "bundles/junk", "v1", [gzip.compress(b"not a tar archive" * 40)])
    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/junk:v1")
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundleExtractFailed"


# --- prune -----------------------------------------------------------------------------------


def test_prune_deletes_the_image_after_pulling(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push_image(registry.host, "bundles/once", "v1", [layer(Entry("f.txt", b"f\n"))])
    assert registry_digest(registry.host, "bundles/once", "v1") == digest

    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/once:v1", "--prune")

    assert run.code == 0, run.err
    assert tree(run.target) == {"f.txt": "f\n"}
    assert run.result("shp-source-default-image-digest") == digest
    assert registry_digest(registry.host, "bundles/once", "v1") is None
    assert registry_digest(registry.host, "bundles/once", digest) is None
    assert "pruned" in run.out


class NoDeleteRegistry(LocalRegistry):
    """A registry whose storage refuses deletes, as many production registries do."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        text = config.read_text()
        assert "delete: {enabled: true}" in text
        config.write_text(text.replace("delete: {enabled: true}", "delete: {enabled: false}"))
        return config


def test_prune_refused_is_only_a_warning(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with NoDeleteRegistry(tmp_path / "no-delete") as keeper:
        digest = push_image(keeper.host, "bundles/kept", "v1", [layer(Entry("k", b"k"))])
        run = run_bundle(capsys, tmp_path / "run", f"{keeper.host}/bundles/kept:v1", "--prune")
        assert registry_digest(keeper.host, "bundles/kept", "v1") == digest
    assert run.code == 0, run.err
    assert "warning: could not prune" in run.err
    assert "HTTP 405" in run.err
    assert run.result("shp-source-default-image-digest") == digest


# --- registry failures and arguments ---------------------------------------------------------


def test_missing_image(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_bundle(capsys, tmp_path, f"{registry.host}/bundles/nothing:v9")
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundlePullFailed"
    assert "does not exist" in (run.result("shp-error-message") or "")


def test_unreachable_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_bundle(capsys, tmp_path, f"127.0.0.1:{free_port()}/bundles/app:v1")
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundlePullFailed"
    assert "cannot reach registry" in (run.result("shp-error-message") or "")


def test_invalid_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_bundle(capsys, tmp_path, "Not A Reference")
    assert run.code == 1
    assert run.result("shp-error-reason") == "BundlePullFailed"


def test_plain_http_only_for_loopback_or_insecure() -> None:
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.8.9.10", "localhost"):
        assert bundle.is_loopback_registry(host), host
    for host in ("registry.example:5000", "10.0.0.1:5000", "[2001:db8::1]:443", "docker.io"):
        assert not bundle.is_loopback_registry(host), host
    parser = bundle.build_parser()
    assert parser.parse_args(["--image", "x", "--insecure"]).insecure is True
    assert parser.parse_args(["--image", "x", "--insecure=false"]).insecure is False


def test_parse_created() -> None:
    assert bundle.parse_created("1970-01-01T00:00:00Z") == 0
    assert bundle.parse_created("2024-05-06T07:08:09Z") == 1714979289
    assert bundle.parse_created("2024-05-06T09:08:09.5+02:00") == 1714979289
    assert bundle.parse_created("yesterday") is None
    assert bundle.parse_created(None) is None


def test_the_rendered_pod_arguments_parse() -> None:
    source = {"type": "OCI", "ociArtifact": {"image": "registry.example/src/app:v1",
                                             "prune": "AfterPull", "pullSecret": "pull"}}
    step = container(render(build={**BOOK_BUILD, "source": source}), "step-source-default")
    sequenced = sequenced_step(step)
    assert sequenced is not None
    assert sequenced.argv[:2] == ("buildwright-step", "bundle")
    args = bundle.build_parser().parse_args(sequenced.argv[2:])
    assert (args.image, args.target, args.prune, args.secret_path) == (
        "registry.example/src/app:v1", "/workspace/source", True, "/workspace/shp-pull-secret")
    assert args.result_file_error_reason == "/tekton/results/shp-error-reason"
    assert args.termination_log == "/tekton/termination"
