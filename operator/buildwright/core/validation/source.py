"""The source of a Build: the repository probe `build.shipwright.io/verify.repository` asks
for (only the Build's own http(s) URL, within the operator's probe policy), the URL checks,
the Secrets the source and output name, and a source whose type does not match its fields
(which, as upstream, does not stop registration)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from buildwright.api.v1beta1 import (
    Build,
    BuildSpec,
)
from buildwright.core.formats import go_quote
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import source_secret

VERIFY_REPOSITORY_ANNOTATION = "build.shipwright.io/verify.repository"


#: What the shell puts into `BuildFacts.repository_probe` when the anonymous probe of an
#: http(s) repository was answered with "authentication required" (private or non-existent
#: repository). Any other non-None value is taken as the raw error text of the probe.
PROBE_AUTH_REQUIRED = "authentication required"


def classify_git_url(url: str) -> tuple[str, str | None]:
    """(protocol, parse error) of a Git URL the way go-git's endpoint parser sees it."""
    if re.match(r"[^:]+://", url):
        try:
            parsed = urllib.parse.urlsplit(url)
            _ = parsed.port  # raises for a non-numeric port, as Go's url.Parse does
        except ValueError as error:
            return "", f"parse {go_quote(url)}: {error}"
        return parsed.scheme.lower(), None
    if re.fullmatch(r"(?:[^@]+@)?[^:\s]+:[^\\].*", url, flags=re.DOTALL):
        return "ssh", None
    return "file", None


def probe_unreachable_message(
    host: str, port: int | None, *, no_such_host: bool, refused: bool, detail: str
) -> str:
    """What `repository_probe` holds when the probe found no server: the words of Go's
    resolver and dialer, which upstream reports (`lookup <host>: no such host`, `connect:
    connection refused`) and users search for, then the system's own words and what to check."""
    address = f"{host}:{port}" if port else host
    if no_such_host:
        return f"lookup {host}: no such host ({detail}); check the host name in the source URL"
    if refused:
        return (
            f"dial tcp {address}: connect: connection refused; check the host and port in"
            " the source URL and that the Git server is running"
        )
    return f"dial tcp {address}: {detail}; check the source URL and the network to its host"


@dataclass(frozen=True)
class ProbePolicy:
    """Whether and where the operator may probe repositories (`verify.repository`): the
    probe is a request the operator makes to a URL a Build author wrote."""

    #: False: never probe (the annotation is then accepted without a check).
    enabled: bool = True
    #: When set, only these hosts (lower case, without port) are probed.
    allowed_hosts: frozenset[str] | None = None


def probe_url(url: str, policy: ProbePolicy = ProbePolicy()) -> str | None:
    """The smart-HTTP ref advertisement URL of `url`, rebuilt from its parsed parts, or None
    when it must not be probed.

    Only http and https; userinfo, query and fragment are dropped (a `#` must not cut off
    the appended path, credentials in the URL must not be sent), and the host must be in the
    policy's allow-list when it has one.
    """
    if not policy.enabled:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if policy.allowed_hosts is not None and host.lower() not in policy.allowed_hosts:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{netloc}{path}/info/refs?service=git-upload-pack"


def repository_to_probe(build: Build) -> str | None:
    """The http(s) URL the shell must probe anonymously (ls-remote style), or None.

    Only for `type: Git` without `cloneSecret` and annotation verify.repository = "true".
    What is requested is `probe_url` of it.
    """
    spec = build.spec
    if spec.source is None or spec.source.type != "Git" or spec.source.git is None:
        return None
    git = spec.source.git
    if git.clone_secret is not None:
        return None
    annotations = build.metadata.get("annotations") or {}
    if annotations.get(VERIFY_REPOSITORY_ANNOTATION) != "true":
        return None
    protocol, error = classify_git_url(git.url)
    if error is None and protocol in ("http", "https"):
        return git.url
    return None


def validate_source_url(build: Build, repository_probe: str | None) -> Failure | None:
    """#2 sourceurl: the verify.repository annotation and, if "true", the repository."""
    spec = build.spec
    if spec.source is None or spec.source.type != "Git" or spec.source.git is None:
        return None
    git = spec.source.git
    if git.clone_secret is not None:
        return None
    annotations = build.metadata.get("annotations") or {}
    setting = annotations.get(VERIFY_REPOSITORY_ANNOTATION, "")
    if setting in ("", "false"):
        return None
    if setting != "true":
        return Failure(
            Reason.REMOTE_REPOSITORY_UNREACHABLE,
            f"the annotation {VERIFY_REPOSITORY_ANNOTATION} was not properly defined,"
            " supported values are true or false",
        )
    protocol, error = classify_git_url(git.url)
    if error is not None:
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, error)
    if protocol in ("http", "https"):
        if repository_probe is None:
            return None
        if repository_probe == PROBE_AUTH_REQUIRED:
            return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, "remote repository unreachable")
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, repository_probe)
    if protocol == "file":
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, "invalid source url")
    if protocol == "ssh":
        return Failure(
            Reason.REMOTE_REPOSITORY_UNREACHABLE, "the source url requires authentication"
        )
    return None


def validate_secrets(spec: BuildSpec, existing_secrets: frozenset[str]) -> Failure | None:
    """#3 secrets: push and source secret exist (a shared name counts as the source's)."""
    wanted: dict[str, str] = {}
    if spec.output.push_secret is not None:
        wanted[spec.output.push_secret] = Reason.SPEC_OUTPUT_SECRET_REF_NOT_FOUND
    source = source_secret(spec)
    if source is not None:
        wanted[source] = Reason.SPEC_SOURCE_SECRET_REF_NOT_FOUND
    missing = sorted(name for name in wanted if not name or name not in existing_secrets)
    if len(missing) > 1:
        return Failure(
            Reason.MULTIPLE_SECRET_REF_NOT_FOUND, "missing secrets are " + ",".join(missing)
        )
    if missing:
        return Failure(wanted[missing[0]], f"referenced secret {missing[0]} not found")
    return None


def source_mismatch(spec: BuildSpec) -> str | None:
    """#5 source: the error text when `source.type` does not match the fields set.

    At Build level this sets no reason (the Build still registers, as upstream).
    """
    source = spec.source
    if source is None:
        return None
    present = {
        "Git": source.git is not None,
        "OCI": source.oci_artifact is not None,
        "Local": source.local is not None,
    }
    if not present[source.type] or any(on for kind, on in present.items() if kind != source.type):
        return "type does not match the source"
    return None
