"""``buildwright-step image-processing``: push the built image and apply the Build's mutations.

Runs as ``step-image-processing`` with the arguments of Shipwright's own image-processing step
(see :func:`build_parser`). Two modes:

* **Shipwright-managed push** (``--push DIR``): the strategy left its image in ``DIR``, either
  as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) or as one image
  tarball. A tarball may be a docker-archive (``manifest.json``, as ``docker save`` and
  kaniko's ``--tar-path`` write) or an OCI archive (a layout packed into a tar). A
  docker-archive becomes an OCI image: uncompressed layers are gzipped deterministically
  (no name, mtime 0) so the same input gives the same digest, and the config's
  ``rootfs.diff_ids`` are recomputed from the layers.
* **Mutation only** (no ``--push``): the strategy pushed ``--image`` itself; its manifest and
  config are pulled, mutated and pushed back under the same tag. Layers stay where they are.

Mutations: ``--annotation`` (manifest annotations; on an index, on the index and on every
image in it), ``--label`` (config labels) and ``--image-timestamp``/``--image-timestamp-file``
(config ``created`` and every history entry's ``created``). Unlike upstream, the timestamps of
files inside layers are not rewritten: that would mean re-packing every layer, which the
strategies that care (buildah ``--timestamp``, ko, buildpacks) already do themselves.
A source in Docker media types is converted to OCI media types when it is mutated; without
mutations the manifest is pushed byte for byte, so its digest is the one the strategy made.

Results: ``--result-file-image-digest`` gets the digest of the manifest (or index) stored
under the tag; ``--result-file-image-size`` gets the compressed image size, defined here as
config size + sum of layer sizes (the manifest itself is not counted; for an index, the sum
over its images, each blob counted once).

Vulnerability scanning is not available in this build: when ``--vuln-settings`` enables it,
the step prints a warning, writes an empty ``--result-file-image-vulnerabilities`` and carries
on (it never exits 22).

Credentials: the ``.dockerconfigjson`` of the Secret mounted at ``--secret-path`` if given,
else ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``. They are never printed.

One module, over 500 lines: one program that runs in the Pod, read top to bottom (load the
image, mutate it, push it, scan it, write the results); its registry client is `registry.py`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from buildwright.steps.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    AuthenticationError,
    Reference,
    RegistryClient,
    RegistryError,
    credentials_for,
    environment_docker_config,
    load_docker_config,
    parse_reference,
    sha256_digest,
)
from buildwright.steps.resultfiles import bool_argument, write_result

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_IMAGE = 100
"""Upstream's exit code for an empty ``--image``."""

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Docker media types and their OCI equivalents, for converting a mutated image.
_TO_OCI = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_MANIFEST_LIST: OCI_INDEX,
    "application/vnd.docker.container.image.v1+json": OCI_CONFIG,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER_TAR,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


class ImageError(Exception):
    """The image in the output directory (or the registry) is missing or malformed."""


def log(message: str) -> None:
    print(f"image-processing: {message}", flush=True)


def encode_json(document: Mapping[str, Any]) -> bytes:
    """Compact JSON; deterministic because our dicts are built in a fixed order."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- the image model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """A blob we can upload: its digest, size and a way to (re)open its content."""

    digest: str
    size: int
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Image:
    """One image manifest (exact bytes) and its config (exact bytes)."""

    manifest: bytes
    config: bytes

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.manifest)
        return loaded

    @property
    def media_type(self) -> str:
        return str(self.document.get("mediaType") or OCI_MANIFEST)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass(frozen=True)
class Index:
    """An image index (exact bytes) and the images or indexes it lists, by their digest."""

    manifest: bytes
    children: Mapping[str, Image | Index] = field(default_factory=dict)

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.manifest)
        return loaded

    @property
    def media_type(self) -> str:
        return str(self.document.get("mediaType") or OCI_INDEX)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


Node = Image | Index


def image_size(node: Node) -> int:
    """Config size + sum of layer sizes; for an index over its images, each blob once."""
    sizes: dict[str, int] = {}

    def visit(current: Node) -> None:
        document = current.document
        if isinstance(current, Index):
            for child in current.children.values():
                visit(child)
            return
        for descriptor in [document.get("config") or {}, *(document.get("layers") or [])]:
            if descriptor.get("digest"):
                sizes[descriptor["digest"]] = int(descriptor.get("size") or 0)

    visit(node)
    return sum(sizes.values())


# --- mutations (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutations:
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str | None = None
    """RFC 3339 time for config ``created`` and history entries."""

    def __bool__(self) -> bool:
        return bool(self.annotations or self.labels or self.created is not None)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mutate_config(config: bytes, labels: Mapping[str, str], created: str | None) -> bytes:
    """The config with ``labels`` merged in and timestamps set; unchanged bytes when no-op."""
    if not labels and created is None:
        return config
    document = json.loads(config)
    if not isinstance(document, dict):
        raise ImageError("the image config is not a JSON object")
    if labels:
        section = document.get("config")
        if not isinstance(section, dict):
            section = document["config"] = {}
        merged = section.get("Labels")
        section["Labels"] = {**(merged if isinstance(merged, dict) else {}), **labels}
    if created is not None:
        document["created"] = created
        for entry in document.get("history") or []:
            if isinstance(entry, dict):
                entry["created"] = created
    return encode_json(document)


def _oci_descriptor(descriptor: Mapping[str, Any]) -> dict[str, Any]:
    converted = dict(descriptor)
    media_type = converted.get("mediaType")
    if isinstance(media_type, str) and media_type in _TO_OCI:
        converted["mediaType"] = _TO_OCI[media_type]
    return converted


def mutate_image(image: Image, mutations: Mutations) -> Image:
    """Apply labels/timestamp to the config and annotations to the manifest.

    Without mutations the image is returned unchanged (same bytes, same digest). Otherwise the
    manifest is rebuilt with OCI media types.
    """
    if not mutations:
        return image
    document = image.document
    config = mutate_config(image.config, mutations.labels, mutations.created)
    config_descriptor = _oci_descriptor(document["config"])
    config_descriptor["digest"] = sha256_digest(config)
    config_descriptor["size"] = len(config)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor,
        "layers": [_oci_descriptor(layer) for layer in document.get("layers") or []],
    }
    for key in ("subject", "artifactType"):
        if key in document:
            manifest[key] = document[key]
    annotations = {**(document.get("annotations") or {}), **mutations.annotations}
    if annotations:
        manifest["annotations"] = annotations
    return Image(manifest=encode_json(manifest), config=config)


def mutate_index(index: Index, mutations: Mutations) -> Index:
    """Mutate every image (and nested index) of ``index``, then annotate the index itself."""
    if not mutations:
        return index
    document = index.document
    children: dict[str, Node] = {}
    descriptors = []
    for descriptor in document.get("manifests") or []:
        child = index.children.get(descriptor.get("digest", ""))
        if child is None:
            # Not an image we can read (an artifact, say): listed as it was.
            descriptors.append(descriptor)
            continue
        mutated: Node = (mutate_index(child, mutations) if isinstance(child, Index)
                         else mutate_image(child, mutations))
        updated = _oci_descriptor(descriptor)
        updated["mediaType"] = mutated.media_type
        updated["digest"] = mutated.digest
        updated["size"] = len(mutated.manifest)
        descriptors.append(updated)
        children[mutated.digest] = mutated
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": descriptors}
    annotations = {**(document.get("annotations") or {}), **mutations.annotations}
    if annotations:
        manifest["annotations"] = annotations
    return Index(manifest=encode_json(manifest), children=children)


def mutate(node: Node, mutations: Mutations) -> Node:
    return mutate_index(node, mutations) if isinstance(node, Index) else mutate_image(node,
                                                                                       mutations)


# --- reading the output directory ------------------------------------------------------------


@dataclass
class Loaded:
    """An image read from the output directory and the blobs it needs."""

    node: Node
    blobs: dict[str, Blob]
    kind: str


def _file_blob(path: Path, digest: str, size: int) -> Blob:
    return Blob(digest=digest, size=size, open=lambda: open(path, "rb"))


def _layout_blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not all(
        character in "0123456789abcdef" for character in hex_digest
    ):
        raise ImageError(f"unsupported or malformed digest {digest!r} in the OCI layout")
    return layout / "blobs" / algorithm / hex_digest


def _read_layout_blob(layout: Path, digest: str) -> bytes:
    path = _layout_blob_path(layout, digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"the OCI layout {layout} lacks blob {digest}") from None
    if sha256_digest(data) != digest:
        raise ImageError(f"blob {digest} in the OCI layout {layout} does not match its digest")
    return data


def _load_layout_node(layout: Path, descriptor: Mapping[str, Any],
                      blobs: dict[str, Blob]) -> Node:
    raw = _read_layout_blob(layout, str(descriptor.get("digest", "")))
    try:
        document = json.loads(raw)
    except ValueError:
        raise ImageError(f"manifest {descriptor.get('digest')} is not JSON") from None
    media_type = document.get("mediaType") or descriptor.get("mediaType")
    if media_type in INDEX_TYPES or (media_type is None and "manifests" in document):
        children: dict[str, Node] = {}
        for child in document.get("manifests") or []:
            if child.get("mediaType") in (*MANIFEST_TYPES, *INDEX_TYPES):
                children[child["digest"]] = _load_layout_node(layout, child, blobs)
        return Index(manifest=raw, children=children)
    if media_type not in MANIFEST_TYPES and "config" not in document:
        raise ImageError(f"manifest {descriptor.get('digest')} has unsupported type {media_type}")
    config = _read_layout_blob(layout, document["config"]["digest"])
    for layer in document.get("layers") or []:
        digest, size = str(layer.get("digest", "")), int(layer.get("size") or 0)
        path = _layout_blob_path(layout, digest)
        if not path.is_file():
            if layer.get("urls"):
                continue  # a foreign layer lives elsewhere; the registry does not need it
            raise ImageError(f"the OCI layout {layout} lacks layer {digest}")
        if path.stat().st_size != size:
            raise ImageError(f"layer {digest} in the OCI layout {layout} has the wrong size")
        blobs[digest] = _file_blob(path, digest, size)
    return Image(manifest=raw, config=config)


def load_oci_layout(layout: Path) -> Loaded:
    """The image (or index) of an OCI layout: its one top-level entry, or all of them."""
    try:
        index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImageError(f"{layout} has no index.json: not an OCI image layout") from None
    except ValueError:
        raise ImageError(f"{layout}/index.json is not JSON") from None
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"the OCI layout {layout} lists no image in index.json")
    blobs: dict[str, Blob] = {}
    if len(entries) == 1:
        return Loaded(_load_layout_node(layout, entries[0], blobs), blobs, "OCI image layout")
    # Several entries: push them as one index, as a multi-platform build leaves them.
    children: dict[str, Node] = {}
    descriptors = []
    for entry in entries:
        children[entry["digest"]] = _load_layout_node(layout, entry, blobs)
        descriptor = {key: value for key, value in entry.items() if key != "annotations"}
        annotations = {key: value for key, value in (entry.get("annotations") or {}).items()
                       if key != REF_NAME_ANNOTATION}
        if annotations:
            descriptor["annotations"] = annotations
        descriptors.append(descriptor)
    manifest = encode_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": descriptors})
    return Loaded(Index(manifest=manifest, children=children), blobs, "OCI image layout")


def _hash_stream(stream: IO[bytes] | gzip.GzipFile) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _gzip_layer(source: IO[bytes], target: Path) -> str:
    """Gzip ``source`` into ``target`` reproducibly; returns the uncompressed digest."""
    uncompressed = hashlib.sha256()
    with open(target, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
    ) as compressed:
        while chunk := source.read(_CHUNK):
            uncompressed.update(chunk)
            compressed.write(chunk)
    return "sha256:" + uncompressed.hexdigest()


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    normalised = os.path.normpath(name.lstrip("/"))
    try:
        extracted = archive.extractfile(normalised)
    except KeyError:
        extracted = None
    if extracted is None:
        raise ImageError(f"the image tarball lacks {name}")
    return extracted


def load_docker_archive(archive: tarfile.TarFile, scratch: Path) -> Loaded:
    """A single-image docker-archive as an OCI image with gzip layers (in ``scratch``)."""
    with _member(archive, "manifest.json") as handle:
        try:
            entries = json.load(handle)
        except ValueError:
            raise ImageError("manifest.json of the image tarball is not JSON") from None
    if not isinstance(entries, list) or len(entries) != 1:
        count = len(entries) if isinstance(entries, list) else 0
        raise ImageError(f"the image tarball must hold exactly one image, it holds {count}")
    entry = entries[0]
    with _member(archive, str(entry.get("Config", ""))) as handle:
        config_document = json.load(handle)
    blobs: dict[str, Blob] = {}
    layers, diff_ids = [], []
    for number, name in enumerate(entry.get("Layers") or []):
        with _member(archive, str(name)) as handle:
            magic = handle.read(4)
            handle.seek(0)
            target = scratch / f"layer-{number}"
            if magic.startswith(_GZIP_MAGIC) or magic == _ZSTD_MAGIC:
                with open(target, "wb") as copy:
                    shutil.copyfileobj(handle, copy, _CHUNK)
                if magic == _ZSTD_MAGIC:
                    media_type = OCI_LAYER_ZSTD
                    known = (config_document.get("rootfs") or {}).get("diff_ids") or []
                    if number >= len(known):
                        raise ImageError(f"zstd layer {name} has no diff_id in the config")
                    diff_id = known[number]
                else:
                    media_type = OCI_LAYER_GZIP
                    with open(target, "rb") as packed, gzip.GzipFile(fileobj=packed) as unpacked:
                        diff_id = _hash_stream(unpacked)[0]
            else:
                media_type = OCI_LAYER_GZIP
                diff_id = _gzip_layer(handle, target)
        with open(target, "rb") as written:
            digest, size = _hash_stream(written)
        blobs[digest] = _file_blob(target, digest, size)
        layers.append({"mediaType": media_type, "digest": digest, "size": size})
        diff_ids.append(diff_id)
    rootfs = config_document.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("diff_ids") != diff_ids:
        if isinstance(rootfs, dict) and rootfs.get("diff_ids"):
            log("the config's rootfs.diff_ids did not match the layers; corrected them")
        config_document["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        config = encode_json(config_document)
    else:
        with _member(archive, str(entry.get("Config", ""))) as handle:
            config = handle.read()
    manifest = encode_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": layers,
    })
    return Loaded(Image(manifest=manifest, config=config), blobs, "docker-archive tarball")


def _safe_members(archive: tarfile.TarFile) -> Iterable[tarfile.TarInfo]:
    for member in archive.getmembers():
        name = os.path.normpath(member.name)
        if name.startswith(("..", "/")) or not (member.isfile() or member.isdir()):
            raise ImageError(f"the image tarball has an unsafe entry {member.name!r}")
        yield member


def load_tarball(path: Path, scratch: Path) -> Loaded:
    """A docker-archive (``manifest.json``) or an OCI archive (``index.json``) tarball."""
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as error:
        raise ImageError(f"cannot read the image tarball {path}: {error}") from None
    with archive:
        names = {os.path.normpath(name) for name in archive.getnames()}
        if "manifest.json" in names:
            return load_docker_archive(archive, scratch)
        if "index.json" in names:
            target = scratch / "oci-archive"
            target.mkdir()
            archive.extractall(target, members=list(_safe_members(archive)), filter="data")
            loaded = load_oci_layout(target)
            loaded.kind = "OCI archive tarball"
            return loaded
    raise ImageError(
        f"{path} is neither a docker-archive (manifest.json) nor an OCI archive (index.json)"
    )


def load_directory(directory: Path, scratch: Path) -> Loaded:
    """Whatever image the strategy left in the output directory."""
    if not directory.is_dir():
        raise ImageError(
            f"the output directory {directory} does not exist: the build strategy wrote no image"
        )
    if (directory / "index.json").is_file() or (directory / "oci-layout").is_file():
        return load_oci_layout(directory)
    files = sorted(entry for entry in directory.iterdir() if entry.is_file())
    preferred = directory / "image.tar"
    if preferred.is_file():
        return load_tarball(preferred, scratch)
    if len(files) == 1 and tarfile.is_tarfile(files[0]):
        return load_tarball(files[0], scratch)
    raise ImageError(
        f"found no image in {directory}: expected an OCI image layout (oci-layout, index.json, "
        "blobs/) or a single image tarball such as image.tar"
    )


# --- reading from the registry ---------------------------------------------------------------


def pull_node(client: RegistryClient, reference: str) -> Node:
    """The manifest (and config, and children of an index) of ``reference``."""
    raw, media_type = client.get_manifest(reference)
    document = json.loads(raw)
    if media_type in INDEX_TYPES:
        children: dict[str, Node] = {}
        for child in document.get("manifests") or []:
            if child.get("mediaType") in (*MANIFEST_TYPES, *INDEX_TYPES):
                children[child["digest"]] = pull_node(client, child["digest"])
        return Index(manifest=raw, children=children)
    if media_type not in MANIFEST_TYPES:
        raise ImageError(f"{client.repository}:{reference} has unsupported type {media_type}")
    return Image(manifest=raw, config=client.get_blob(document["config"]["digest"]))


# --- pushing ---------------------------------------------------------------------------------


@dataclass
class Pusher:
    """Uploads what a node needs, skipping blobs the registry already has."""

    client: RegistryClient
    blobs: Mapping[str, Blob]
    checked: set[str] = field(default_factory=set)
    uploaded: int = 0
    present: int = 0

    def _ensure_blob(self, digest: str, size: int, data: bytes | None = None) -> None:
        if digest in self.checked:
            return
        if self.client.blob_exists(digest):
            self.present += 1
        elif data is not None:
            self.client.upload_blob(digest, size, data)
            self.uploaded += 1
        elif digest in self.blobs:
            blob = self.blobs[digest]
            self.client.upload_blob(digest, blob.size, blob.open)
            self.uploaded += 1
        else:
            raise ImageError(
                f"layer {digest} is neither in the output directory nor in the registry"
            )
        self.checked.add(digest)

    def push(self, node: Node, reference: str) -> str:
        """Push ``node`` (children by digest first) and store it as ``reference``."""
        document = node.document
        if isinstance(node, Index):
            for digest, child in node.children.items():
                self.push(child, digest)
        else:
            for layer in document.get("layers") or []:
                if layer.get("urls"):
                    continue
                self._ensure_blob(layer["digest"], int(layer.get("size") or 0))
            self._ensure_blob(document["config"]["digest"], len(node.config), node.config)
        return self.client.put_manifest(reference, node.manifest, node.media_type)


# --- arguments -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildwright-step image-processing",
        description="Push the image in the output directory (or re-push --image) with the "
                    "Build's annotations, labels and timestamp.",
    )
    parser.add_argument("--push", metavar="DIR",
                        help="push the OCI layout or image tarball in DIR")
    parser.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE",
                        help="manifest annotation (repeatable)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="config label (repeatable)")
    parser.add_argument("--image-timestamp", metavar="EPOCH",
                        help="set the image creation time to EPOCH seconds")
    parser.add_argument("--image-timestamp-file", metavar="FILE",
                        help="read the EPOCH for --image-timestamp from FILE")
    parser.add_argument("--image", default="", help="destination image reference")
    parser.add_argument("--insecure", type=bool_argument, nargs="?", const=True, default=False,
                        help="allow plain HTTP and unverified TLS for the registry")
    parser.add_argument("--result-file-image-digest", metavar="FILE")
    parser.add_argument("--result-file-image-size", metavar="FILE")
    parser.add_argument("--result-file-image-vulnerabilities", metavar="FILE")
    parser.add_argument("--secret-path", metavar="DIR",
                        help="mounted kubernetes.io/dockerconfigjson Secret")
    parser.add_argument("--vuln-settings", metavar="JSON",
                        help="vulnerability scan settings (scanning is not available)")
    parser.add_argument("--vuln-count-limit", type=int, default=50, metavar="N")
    return parser


def parse_pairs(values: Sequence[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, content = value.partition("=")
        if not separator or not key:
            raise ValueError(f"{what} {value!r} is not of the form key=value")
        pairs[key] = content
    return pairs


def parse_timestamp(value: str | None, path: str | None) -> int | None:
    if value is not None and path is not None:
        raise ValueError("--image-timestamp and --image-timestamp-file are mutually exclusive")
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(
                f"cannot read the image timestamp file {path}: {error.strerror}"
            ) from None
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"image timestamp {value.strip()!r} is not a number of seconds") from None


def scan_requested(settings: str | None) -> bool:
    if not settings:
        return False
    try:
        parsed = json.loads(settings)
    except ValueError:
        raise ValueError("--vuln-settings is not valid JSON") from None
    return isinstance(parsed, dict) and bool(parsed.get("enabled"))


def find_credentials(reference: Reference, secret_path: str | None
                     ) -> tuple[tuple[str, str] | None, str]:
    """Credentials for the destination registry and where they came from (for the log)."""
    if secret_path:
        candidates = [os.path.join(secret_path, ".dockerconfigjson"),
                      os.path.join(secret_path, "config.json")]
        for candidate in candidates:
            if os.path.isfile(candidate):
                found = credentials_for(load_docker_config(candidate), reference.registry)
                return found, "the push secret"
        raise RegistryError(
            f"the push secret at {secret_path} has no .dockerconfigjson; use a Secret of type "
            "kubernetes.io/dockerconfigjson"
        )
    path = environment_docker_config()
    return credentials_for(load_docker_config(path), reference.registry), path


# --- main ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    reference = parse_reference(args.image)
    mutations = Mutations(
        annotations=parse_pairs(args.annotation, "annotation"),
        labels=parse_pairs(args.label, "label"),
    )
    epoch = parse_timestamp(args.image_timestamp, args.image_timestamp_file)
    if epoch is not None:
        mutations = replace(mutations, created=rfc3339(epoch))
    if scan_requested(args.vuln_settings):
        log("WARNING: vulnerability scanning was requested, but this build of buildwright has "
            "no scanner; the image is NOT scanned and no vulnerabilities are reported")
        write_result(args.result_file_image_vulnerabilities, "")

    credentials, source = find_credentials(reference, args.secret_path)
    if credentials is not None:
        log(f"using credentials for {reference.registry} from {source}")
    client = RegistryClient.for_reference(reference, credentials, args.insecure)

    with tempfile.TemporaryDirectory(prefix="image-processing-") as scratch:
        if args.push:
            loaded = load_directory(Path(args.push), Path(scratch))
            log(f"loaded {'an image index' if isinstance(loaded.node, Index) else 'an image'} "
                f"from the {loaded.kind} in {args.push}")
            node, blobs = loaded.node, loaded.blobs
        else:
            log(f"loading {reference} from the registry")
            node, blobs = pull_node(client, reference.reference), {}
        if mutations:
            log("mutating the image: " + ", ".join(
                part for part in (
                    f"{len(mutations.annotations)} annotation(s)" if mutations.annotations
                    else "",
                    f"{len(mutations.labels)} label(s)" if mutations.labels else "",
                    f"timestamp {mutations.created}" if mutations.created else "",
                ) if part
            ))
            node = mutate(node, mutations)
        pusher = Pusher(client, blobs)
        target = reference.tag or node.digest
        if reference.digest and not reference.tag and reference.digest != node.digest:
            log(f"note: {reference} names a digest; the image pushed is {node.digest}")
        digest = pusher.push(node, target)
    size = image_size(node)
    log(f"pushed {pusher.uploaded} blob(s), {pusher.present} already present")
    log(f"image {reference.registry}/{reference.repository}@{digest} ({size} bytes)")
    write_result(args.result_file_image_digest, digest)
    write_result(args.result_file_image_size, str(size))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as leaving:
        return int(leaving.code or 0) if isinstance(leaving.code, int) else EXIT_USAGE
    if not args.image:
        print("image-processing: error: the --image argument must not be empty",
              file=sys.stderr)
        return EXIT_NO_IMAGE
    try:
        return run(args)
    except AuthenticationError as error:
        print(f"image-processing: authentication failed: {error}", file=sys.stderr)
    except (RegistryError, ImageError, ValueError) as error:
        print(f"image-processing: error: {error}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
