"""``buildwright-step bundle``: unpack an OCI artifact (a "source bundle") into the workspace.

Runs as the init container ``step-source-default`` of a Build whose ``source.type`` is ``OCI``,
with the arguments of Shipwright's bundle step (see :func:`build_parser`). It pulls the image
(an index resolves to its ``linux/amd64`` entry, or to its only entry), applies the layers in
order to the target directory the way a container runtime stacks them (``.wh.<name>`` deletes
a lower layer's file, ``.wh..wh..opq`` hides a lower layer's directory content), and writes two
results: the image's manifest digest and the source timestamp.

The source timestamp is the newest modification time of a regular file in the layers, as
Shipwright computes it: bundles made by ``shp`` carry a config ``created`` of epoch 0, so the
config says nothing about the source. Only when the layers hold no regular file does the
config's ``created`` (if later than epoch 0) stand in; with neither, no timestamp is written.

Layers come from anyone who may push to a registry, so nothing in them may write outside the
target directory: absolute names, ``..`` components, symlinks whose target is absolute or
resolves outside, hard links to outside, and writes through such links are refused; a final
pass checks every symlink of the finished tree. Device nodes and FIFOs are skipped.

``--prune`` (``prune: AfterPull``) deletes what the reference names (by digest, which removes
its tags) once the source is unpacked; a registry that refuses only earns a warning, because
the build itself has what it needs.

Plain HTTP (and unverified TLS) is used only with ``--insecure`` or for loopback registries,
where nothing leaves the machine. Credentials come from a mounted
``kubernetes.io/dockerconfigjson`` Secret (``--secret-path``) and never reach the log.

Failure reasons written to ``shp-error-reason`` (the Shipwright API defines none for this
step):

* ``BundleAuthFailed``: the registry refused the credentials, wants some and the pull secret
  has none for it, or the pull secret is unusable;
* ``BundlePullFailed``: bad reference, unreachable registry, image or blob missing, no
  ``linux/amd64`` image in an index, unexpected manifest;
* ``BundleExtractFailed``: a layer is not a (gzip) tar, or tries to leave the target directory.

One module, over 500 lines: one program that runs in the Pod, read top to bottom (pull,
resolve the index, stack the layers, write the results); its registry client is `registry.py`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import ipaddress
import json
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

from buildwright.steps.registry import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    AuthenticationError,
    Reference,
    RegistryClient,
    RegistryError,
    credentials_for,
    load_docker_config,
    parse_reference,
    sha256_digest,
)
from buildwright.steps.resultfiles import (
    bool_argument,
    write_error_results,
    write_result,
)

REASON_AUTH_FAILED = "BundleAuthFailed"
REASON_PULL_FAILED = "BundlePullFailed"
REASON_EXTRACT_FAILED = "BundleExtractFailed"


PLATFORM_OS = "linux"
PLATFORM_ARCHITECTURE = "amd64"

MESSAGE_LIMIT = 300
"""Characters of an error message kept in the result file (it shares a 4 KiB budget)."""

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
SHOW_LISTING_ENV = "BUNDLE_SHOW_LISTING"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_INDEX_DEPTH = 2


class BundleError(Exception):
    """A failure with its reason and a message fit for the BuildRun status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def log(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


# --- registry access -------------------------------------------------------------------------


def is_loopback_registry(registry: str) -> bool:
    """Whether ``host[:port]`` (``[::1]:5000`` for IPv6) is this machine."""
    host = registry
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_credentials(reference: Reference, secret_path: str | None) -> tuple[str, str] | None:
    """Credentials for the bundle's registry from the pull secret; ``None`` without a secret.

    A secret that has no entry for the registry is an error: pulling anonymously instead would
    fail later with a puzzling "unauthorized", or silently pull from the wrong account.
    """
    if not secret_path:
        return None
    for name in (".dockerconfigjson", "config.json"):
        candidate = os.path.join(secret_path, name)
        if os.path.isfile(candidate):
            break
    else:
        raise BundleError(
            REASON_AUTH_FAILED,
            f"the pull secret at {secret_path} has no .dockerconfigjson; use a Secret of type "
            "kubernetes.io/dockerconfigjson",
        )
    try:
        config = load_docker_config(candidate)
        found = credentials_for(config, reference.registry)
    except RegistryError as error:
        raise BundleError(REASON_AUTH_FAILED, f"the pull secret is unusable: {error}") from None
    if found is None:
        auths = config.get("auths")
        known = ", ".join(sorted(str(key) for key in auths)) if isinstance(auths, dict) else ""
        raise BundleError(
            REASON_AUTH_FAILED,
            f"the pull secret has no credentials for {reference.registry}; it has credentials "
            f"for: {known or 'no registry'}",
        )
    return found


def _platform_of(entry: dict[str, Any]) -> str:
    platform = entry.get("platform")
    if not isinstance(platform, dict):
        return "unknown"
    text = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return text + (f"/{platform['variant']}" if platform.get("variant") else "")


def select_index_entry(index: dict[str, Any]) -> dict[str, Any]:
    """The entry of an image index to unpack: ``linux/amd64``, or the only entry there is."""
    entries = [entry for entry in index.get("manifests") or [] if isinstance(entry, dict)]
    if len(entries) == 1:
        return entries[0]
    for entry in entries:
        platform = entry.get("platform")
        if (isinstance(platform, dict) and platform.get("os") == PLATFORM_OS
                and platform.get("architecture") == PLATFORM_ARCHITECTURE):
            return entry
    offered = ", ".join(_platform_of(entry) for entry in entries) or "none"
    raise BundleError(
        REASON_PULL_FAILED,
        f"the image index has no {PLATFORM_OS}/{PLATFORM_ARCHITECTURE} image (it offers: "
        f"{offered})",
    )


@dataclass(frozen=True)
class ResolvedImage:
    """The image to unpack and the digest its reference resolved to (an index's, maybe)."""

    reference_digest: str
    digest: str
    manifest: dict[str, Any]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [layer for layer in self.manifest.get("layers") or [] if isinstance(layer, dict)]

    @property
    def config_digest(self) -> str | None:
        config = self.manifest.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else None


def _load_json(body: bytes, what: str) -> dict[str, Any]:
    try:
        loaded = json.loads(body)
    except ValueError:
        raise BundleError(REASON_PULL_FAILED, f"{what} is not JSON") from None
    if not isinstance(loaded, dict):
        raise BundleError(REASON_PULL_FAILED, f"{what} is not a JSON object")
    return loaded


def resolve_image(client: RegistryClient, reference: Reference) -> ResolvedImage:
    """Fetch the manifest the reference names, following an index to one image."""
    wanted = reference.digest or reference.reference
    body, media_type = client.get_manifest(wanted)
    reference_digest = sha256_digest(body)
    if reference.digest and reference_digest != reference.digest:
        raise BundleError(REASON_PULL_FAILED, f"the manifest of {reference} does not match its "
                          "digest")
    for _depth in range(_MAX_INDEX_DEPTH + 1):
        document = _load_json(body, f"the manifest of {reference}")
        if media_type in INDEX_TYPES or (media_type not in MANIFEST_TYPES
                                         and "manifests" in document):
            entry = select_index_entry(document)
            digest = entry.get("digest")
            if not isinstance(digest, str):
                raise BundleError(REASON_PULL_FAILED, f"an entry of the index {reference} has "
                                  "no digest")
            log(f"{reference} is an image index; using its {_platform_of(entry)} image {digest}")
            body, media_type = client.get_manifest(digest)
            continue
        if "layers" not in document:
            raise BundleError(REASON_PULL_FAILED, f"{reference} is not an image (media type "
                              f"{media_type or 'unknown'})")
        return ResolvedImage(reference_digest, sha256_digest(body), document)
    raise BundleError(REASON_PULL_FAILED, f"{reference} nests image indexes too deeply")


def prune_image(client: RegistryClient, digest: str) -> bool:
    """Delete the manifest ``digest`` (and so its tags); warn instead of failing."""
    what = f"{client.registry}/{client.repository}@{digest}"
    try:
        answer = client.request("DELETE", f"/v2/{client.repository}/manifests/{digest}")
    except RegistryError as error:
        warn(f"could not prune {what}: {error}")
        return False
    if answer.status in (200, 202, 204):
        log(f"pruned {what}")
        return True
    hint = " (the registry does not allow deletes)" if answer.status == 405 else ""
    warn(f"could not prune {what}: HTTP {answer.status}{hint}")
    return False


# --- layers ----------------------------------------------------------------------------------


def open_layer(data: bytes, digest: str) -> IO[bytes]:
    """A readable uncompressed tar stream of a layer blob (gzip or plain tar)."""
    if data.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"))
    if data.startswith(_ZSTD_MAGIC):
        raise BundleError(REASON_EXTRACT_FAILED, f"layer {digest} is zstd-compressed, which "
                          "this step cannot read; push the bundle with gzip layers")
    return io.BytesIO(data)


def _clean_parts(name: str, what: str) -> list[str]:
    """The components of an archive path, refusing anything that could leave the root."""
    if name.startswith("/"):
        raise BundleError(REASON_EXTRACT_FAILED, f"{what} {name!r} is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BundleError(REASON_EXTRACT_FAILED, f"{what} {name!r} contains '..'")
    return parts


def _remove(path: str) -> None:
    """Remove a file, symlink (never its target) or directory tree, if present."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


@dataclass
class Extractor:
    """Applies layers, in order, to one root directory."""

    target: str
    show_listing: bool = False
    newest_file_mtime: int | None = None
    files: int = 0
    root: str = field(init=False)
    _layer_paths: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        os.makedirs(self.target, exist_ok=True)
        self.root = os.path.realpath(self.target)

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def _escape(self, name: str, how: str) -> BundleError:
        return BundleError(REASON_EXTRACT_FAILED,
                           f"{name!r} {how}, outside the target directory; refusing to unpack")

    def _directory(self, parts: Sequence[str], name: str, *, create: bool) -> str | None:
        """The real path of the directory ``parts`` below the root, walked one component at
        a time so that no symlink, old or new, can lead a write outside the root."""
        current = self.root
        for part in parts:
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                candidate = os.path.realpath(candidate)
                if not self._inside(candidate):
                    raise self._escape(name, "leads through a symlink that points")
            if os.path.isdir(candidate):
                current = candidate
                continue
            if not create:
                return None
            if os.path.lexists(candidate):
                os.unlink(candidate)  # a later layer puts a directory where a file was
            os.mkdir(candidate, 0o755)
            current = candidate
        return current

    def _remember(self, parts: Sequence[str]) -> None:
        for length in range(1, len(parts) + 1):
            self._layer_paths.add("/".join(parts[:length]))

    def apply(self, stream: IO[bytes], digest: str) -> None:
        """Unpack one layer's uncompressed tar stream."""
        self._layer_paths = set()
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    self._apply_member(archive, member)
        except (tarfile.TarError, EOFError, gzip.BadGzipFile) as error:
            raise BundleError(REASON_EXTRACT_FAILED,
                              f"layer {digest} is not a valid tar archive: {error}") from None

    def _apply_member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _clean_parts(member.name, "the layer entry")
        if not parts:
            return  # the root directory itself
        base, parents = parts[-1], parts[:-1]
        if base == OPAQUE_WHITEOUT:
            self._opaque(parents, member.name)
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout([*parents, base[len(WHITEOUT_PREFIX):]], member.name)
            return
        directory = self._directory(parents, member.name, create=True)
        assert directory is not None
        path = os.path.join(directory, base)
        self._remember(parts)
        if member.isdir():
            if not (os.path.isdir(path) and not os.path.islink(path)):
                _remove(path)
                os.mkdir(path)
            # The owner keeps full access so later entries and build steps can write inside.
            os.chmod(path, (member.mode & 0o777) | 0o700)
        elif member.isreg():
            self._write_file(archive, member, path)
        elif member.issym():
            self._symlink(member, directory, path)
        elif member.islnk():
            self._hardlink(member, path)
        else:
            warn(f"skipping {member.name!r}: device nodes and FIFOs are not source files")
            return
        if self.show_listing:
            log(f"  {'/'.join(parts)}")

    def _write_file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        _remove(path)
        source = archive.extractfile(member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            if source is not None:
                shutil.copyfileobj(source, handle)
        # No set-id bits: these are sources, not programs to run with others' rights.
        os.chmod(path, (member.mode & 0o777) | 0o600)
        mtime = int(member.mtime)
        os.utime(path, (mtime, mtime), follow_symlinks=False)
        self.files += 1
        if self.newest_file_mtime is None or mtime > self.newest_file_mtime:
            self.newest_file_mtime = mtime

    def _symlink(self, member: tarfile.TarInfo, directory: str, path: str) -> None:
        if member.linkname.startswith("/"):
            raise self._escape(member.name, f"is a symlink to the absolute path "
                                            f"{member.linkname!r}")
        if not self._inside(os.path.realpath(os.path.join(directory, member.linkname))):
            raise self._escape(member.name, f"is a symlink to {member.linkname!r}")
        _remove(path)
        os.symlink(member.linkname, path)

    def _hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        parts = _clean_parts(member.linkname, "the hard link target")
        directory = self._directory(parts[:-1], member.name, create=False) if parts else None
        source = os.path.join(directory, parts[-1]) if directory is not None else None
        if source is None or os.path.islink(source) or not os.path.isfile(source):
            raise BundleError(REASON_EXTRACT_FAILED, f"the hard link {member.name!r} points to "
                              f"{member.linkname!r}, which is not a file unpacked before it")
        if os.path.abspath(source) == os.path.abspath(path):
            return
        _remove(path)
        try:
            os.link(source, path)
        except OSError:  # some file systems (and protected_hardlinks) refuse; a copy will do
            shutil.copy2(source, path)
        self.files += 1

    def _whiteout(self, parts: list[str], name: str) -> None:
        # A whiteout hides what *lower* layers left; this layer's own entries stay.
        if "/".join(parts) in self._layer_paths:
            return
        directory = self._directory(parts[:-1], name, create=False)
        if directory is not None:
            _remove(os.path.join(directory, parts[-1]))

    def _opaque(self, parts: list[str], name: str) -> None:
        directory = self._directory(parts, name, create=True)
        assert directory is not None
        self._remember(parts)
        prefix = "/".join(parts)
        for child in os.listdir(directory):
            if f"{prefix}/{child}".lstrip("/") not in self._layer_paths:
                _remove(os.path.join(directory, child))

    def symlinks_escaping(self) -> Iterator[str]:
        """Symlinks of the finished tree that resolve outside the root (chains of links that
        were each harmless alone, or pointed elsewhere when they were made)."""
        for directory, subdirectories, files in os.walk(self.root):
            for name in (*subdirectories, *files):
                path = os.path.join(directory, name)
                if os.path.islink(path) and not self._inside(os.path.realpath(path)):
                    yield os.path.relpath(path, self.root)


# --- timestamps ------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_created(value: object) -> int | None:
    """Epoch seconds of an image config's ``created`` (RFC 3339, maybe with nanoseconds)."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return int(datetime.fromisoformat(match.group(1) + zone).timestamp())
    except ValueError:
        return None


def source_timestamp(newest_file_mtime: int | None, config: dict[str, Any]) -> int | None:
    """The source timestamp: newest file, else a meaningful config ``created``, else none."""
    if newest_file_mtime is not None:
        return newest_file_mtime
    created = parse_created(config.get("created"))
    return created if created is not None and created > 0 else None


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildwright-step bundle",
        description="Pull an OCI artifact and unpack its layers as the build's source.",
    )
    parser.add_argument("--image", required=True, help="the bundle image reference")
    parser.add_argument("--target", default="/workspace/source",
                        help="directory to unpack into (default /workspace/source)")
    parser.add_argument("--secret-path", metavar="DIR",
                        help="mounted kubernetes.io/dockerconfigjson pull secret")
    parser.add_argument("--prune", action="store_true",
                        help="delete the image from the registry after pulling it")
    parser.add_argument("--insecure", type=bool_argument, nargs="?", const=True, default=False,
                        help="allow plain HTTP and unverified TLS (always allowed for "
                        "loopback registries)")
    parser.add_argument("--result-file-image-digest", metavar="FILE")
    parser.add_argument("--result-file-source-timestamp", metavar="FILE")
    parser.add_argument("--result-file-error-reason", metavar="FILE")
    parser.add_argument("--result-file-error-message", metavar="FILE")
    parser.add_argument("--termination-log", metavar="FILE",
                        help="on failure, also write the error results here as JSON (the "
                        "container's terminationMessagePath)")
    return parser


@dataclass(frozen=True)
class Outcome:
    digest: str
    timestamp: int | None
    pruned: bool | None


def run(args: argparse.Namespace) -> Outcome:
    """Pull, unpack and (maybe) prune as the arguments say; raises :class:`BundleError`."""
    try:
        reference = parse_reference(args.image)
    except ValueError as error:
        raise BundleError(REASON_PULL_FAILED, str(error)) from None
    credentials = find_credentials(reference, args.secret_path)
    insecure = bool(args.insecure) or is_loopback_registry(reference.api_host)
    client = RegistryClient.for_reference(reference, credentials, insecure, push=False)
    who = "the pull secret's credentials" if credentials else "anonymous access"
    log(f"Pulling {reference} with {who}")
    try:
        image = resolve_image(client, reference)
        config: dict[str, Any] = {}
        if image.config_digest:
            config = _load_json(client.get_blob(image.config_digest), "the image config")
        extractor = Extractor(args.target,
                              show_listing=os.environ.get(SHOW_LISTING_ENV, "") == "true")
        for number, layer in enumerate(image.layers, start=1):
            digest = layer.get("digest")
            if not isinstance(digest, str):
                raise BundleError(REASON_PULL_FAILED, f"layer {number} of {reference} has no "
                                  "digest")
            log(f"Unpacking layer {number}/{len(image.layers)} {digest}")
            extractor.apply(open_layer(client.get_blob(digest), digest), digest)
    except AuthenticationError as error:
        if credentials is None:
            # The client's own text speaks of push secrets; say what fixes a pull.
            raise BundleError(
                REASON_AUTH_FAILED,
                f"{reference.registry} refused anonymous access to {reference.repository}: "
                "set the source's ociArtifact.pullSecret to a kubernetes.io/dockerconfigjson "
                "Secret with credentials for it",
            ) from None
        raise BundleError(REASON_AUTH_FAILED, str(error)) from None
    except RegistryError as error:
        raise BundleError(REASON_PULL_FAILED, str(error)) from None
    except OSError as error:
        raise BundleError(REASON_EXTRACT_FAILED,
                          f"cannot unpack into {args.target}: {error}") from None
    escaping = sorted(extractor.symlinks_escaping())
    for link in escaping:  # never leave them for a later step to follow
        os.unlink(os.path.join(extractor.root, link))
    if escaping:
        raise BundleError(REASON_EXTRACT_FAILED, f"the symlink {escaping[0]!r} resolves outside "
                          "the target directory; refusing to use this bundle")
    timestamp = source_timestamp(extractor.newest_file_mtime, config)
    log(f"Unpacked {extractor.files} file(s) of {reference}@{image.digest} into {args.target}")
    write_result(args.result_file_image_digest, image.digest)
    if timestamp is None:
        log("The bundle has no file and no creation time: no source timestamp")
    else:
        write_result(args.result_file_source_timestamp, str(timestamp))
    pruned = prune_image(client, image.reference_digest) if args.prune else None
    return Outcome(image.digest, timestamp, pruned)


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def report_failure(args: argparse.Namespace, reason: str, message: str) -> None:
    """Error results as files and, for an init container that stops the Pod, as its own
    termination message."""
    message = one_line(message)
    problem = write_error_results(
        reason, message, reason_file=args.result_file_error_reason,
        message_file=args.result_file_error_message, termination_log=args.termination_log,
    )  # fmt: skip
    if problem:
        warn(problem)
    print(f"error: {reason}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except BundleError as error:
        report_failure(args, error.reason, error.message)
        return 1
    except OSError as error:
        report_failure(args, REASON_EXTRACT_FAILED, f"the bundle step failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
