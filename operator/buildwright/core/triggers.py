"""`spec.trigger`: what a webhook delivery or an image update means for Builds (pure).

Every Git provider's delivery is parsed into one shape, `Delivery` (a Push or a PullRequest
of a repository at a commit, on a branch), and matched against the Build's `type: GitHub`
`when[]` entries: upstream's Build API knows the trigger types GitHub, Image and Pipeline
only, so GitLab and generic deliveries are normalised to the same two events instead of
inventing new types that upstream tools would reject (docs/triggers.md).

Exactly once is carried by the objects themselves: a BuildRun's name is derived from the
Build's uid and what caused it (the delivery id; for an image, the image, how many changes
of it were acted on before, and the new digest), so the same cause creates it again only to
be answered AlreadyExists, whichever replica or restart sees it.

The shell around this module is `buildwright.triggers` (the HTTPS receiver and the registry
poller); nothing here does I/O.

One module, over 500 lines: its sections (the names written on objects, the one delivery
shape and its parsers, signatures, matching, the BuildRuns, image changes) are one
vocabulary that the receiver, the poller and the tests use as `triggers.<name>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from buildwright.api.v1beta1 import Build, TriggerWhen
from buildwright.core.labels import is_valid_label_value

# --- names written on the objects -------------------------------------------------------------

DOMAIN = "trigger.buildwright.io"
LABEL_KIND = f"{DOMAIN}/kind"  # github | gitlab | generic | image
LABEL_DELIVERY = f"{DOMAIN}/delivery"  # the delivery id when it is a label value, else a hash
ANNOTATION_TRIGGER = f"{DOMAIN}/trigger"  # the `when[].name` that matched
ANNOTATION_DELIVERY = f"{DOMAIN}/delivery"
ANNOTATION_EVENT = f"{DOMAIN}/event"  # Push | PullRequest
ANNOTATION_BRANCH = f"{DOMAIN}/branch"
ANNOTATION_IMAGE = f"{DOMAIN}/image"
ANNOTATION_DIGEST = f"{DOMAIN}/image-digest"
ANNOTATION_PREVIOUS_DIGEST = f"{DOMAIN}/previous-digest"
# The commit a triggered BuildRun builds instead of the Build's `source.git.revision`
# (`core.resolve.effective_build_spec`); upstream's BuildRun has no field for it.
ANNOTATION_REVISION = f"{DOMAIN}/revision"
BUILD_NAME_LABEL = "build.shipwright.io/name"

# Event reasons on the Build (`kubectl describe build`).
EVENT_TRIGGERED = "BuildRunTriggered"
EVENT_REFUSED = "TriggerDeliveryRefused"
EVENT_IGNORED = "TriggerDeliveryIgnored"
EVENT_IMAGE_POLL_FAILED = "TriggerImagePollFailed"

PUSH = "Push"
PULL_REQUEST = "PullRequest"
GITHUB, GITLAB, GENERIC = "github", "gitlab", "generic"
PROVIDERS = (GITHUB, GITLAB, GENERIC)

# Secret keys holding the webhook secret, by provider, before the shared `token` key. The
# first is what the Shipwright Triggers prototype documented (`github-token`).
SECRET_KEYS = {
    GITHUB: ("github-token", "token"),
    GITLAB: ("gitlab-token", "token"),
    GENERIC: ("generic-token", "github-token", "token"),
}

# Bodies larger than this are refused unread (GitHub caps its payloads at 25 MB; pushes of
# ordinary size are a few kB to a few hundred kB).
DEFAULT_BODY_LIMIT = 1024 * 1024

_ZERO_SHA = re.compile(r"^0+$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_BRANCH_REF = "refs/heads/"


# --- answers ---------------------------------------------------------------------------------


class Refusal(Exception):
    """A delivery answered 4xx: `status` and a short reason for the caller and the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


# Said the same way to every caller whose delivery no Build accepts, whether no Build names
# the repository, the matching Builds' secrets differ, or they have none: an unsigned or
# wrongly signed caller learns nothing about which Builds exist.
NOT_ACCEPTED = "no trigger secret for this repository accepts the signature"


def not_accepted() -> Refusal:
    return Refusal(401, NOT_ACCEPTED)


# --- the one event shape -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery, whatever the provider sent."""

    provider: str
    event: str | None
    """Push or PullRequest; None for events no trigger acts on (ping, tag push, …)."""
    repository_urls: tuple[str, ...]
    """Every URL the payload names for the repository (web, clone, ssh); any may match."""
    branch: str | None
    """Pushed branch, or the pull request's target branch."""
    revision: str | None
    """The commit to build: the pushed head, or the pull request's head."""
    delivery_id: str
    ignored: str | None = None
    """Why nothing is to be done for this delivery (it is still answered 2xx when signed)."""

    @cached_property
    def normalised_urls(self) -> frozenset[str]:
        """`repository_urls` as `normalise_repository_url` compares them (once)."""
        return frozenset(normalise_repository_url(u) for u in self.repository_urls)

    @property
    def describe(self) -> str:
        what = "push" if self.event == PUSH else "pull request"
        short = (self.revision or "")[:12]
        return f"{self.provider} {what} of {short} to {self.branch}"


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name.lower(), "").strip()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refusal(400, "the body is not a JSON object")
    return payload


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _urls(*values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def _branch_of(ref: str | None) -> str | None:
    if ref and ref.startswith(_BRANCH_REF):
        return ref[len(_BRANCH_REF):]
    return None


def _printable(value: str) -> str:
    """At most 200 printable characters: a caller's id reaches logs, labels and Events."""
    return "".join(c if c.isprintable() else "?" for c in value[:200])


def delivery_id(headers: Mapping[str, str], body: bytes, *names: str) -> str:
    """The provider's delivery id, else a hash of the body: a redelivery repeats both."""
    for name in names:
        value = _header(headers, name)
        if value:
            return _printable(value)
    return "sha256-" + hashlib.sha256(body).hexdigest()


def _push(provider: str, repository_urls: tuple[str, ...], ref: Any, after: Any,
          identity: str) -> Delivery:  # fmt: skip
    ref_text = _text(ref)
    if ref_text is None:
        raise Refusal(400, "the push names no ref")
    branch = _branch_of(ref_text)
    revision = _text(after)
    ignored = None
    if branch is None:
        ignored = f"{ref_text} is not a branch"
    elif revision is None or not _SHA.match(revision.lower()):
        raise Refusal(400, "the push names no commit")
    elif _ZERO_SHA.match(revision):
        ignored = f"branch {branch} was deleted"
    return Delivery(provider, PUSH, repository_urls, branch, revision, identity, ignored)


def _pull_request(provider: str, repository_urls: tuple[str, ...], action: str | None,
                  acted_on: tuple[str, ...], target: Any, head: Any,
                  identity: str) -> Delivery:  # fmt: skip
    branch, revision = _text(target), _text(head)
    if branch is None or revision is None or not _SHA.match(revision.lower()):
        raise Refusal(400, "the pull request names no target branch or head commit")
    ignored = None if action in acted_on else f"pull request action {action!r} is not acted on"
    return Delivery(provider, PULL_REQUEST, repository_urls, branch, revision, identity, ignored)


# GitHub: a new pull request, a reopened one, and new commits on one build; the rest do not.
GITHUB_PR_ACTIONS = ("opened", "reopened", "synchronize")
GITLAB_MR_ACTIONS = ("open", "reopen", "update")


def parse_github(headers: Mapping[str, str], body: bytes) -> Delivery:
    """`X-GitHub-Event: push` / `pull_request` (https://docs.github.com/en/webhooks)."""
    event = _header(headers, "X-GitHub-Event")
    if not event:
        raise Refusal(400, "missing X-GitHub-Event")
    payload = _json_object(body)
    identity = delivery_id(headers, body, "X-GitHub-Delivery")
    repo = payload.get("repository")
    repo = repo if isinstance(repo, dict) else {}
    urls = _urls(repo.get("clone_url"), repo.get("html_url"), repo.get("ssh_url"),
                 repo.get("git_url"), repo.get("url"))  # fmt: skip
    if event == "push":
        return _push(GITHUB, urls, payload.get("ref"), payload.get("after"), identity)
    if event == "pull_request":
        pr = payload.get("pull_request")
        pr = pr if isinstance(pr, dict) else {}
        base, head = pr.get("base") or {}, pr.get("head") or {}
        return _pull_request(
            GITHUB, urls, _text(payload.get("action")), GITHUB_PR_ACTIONS,
            base.get("ref") if isinstance(base, dict) else None,
            head.get("sha") if isinstance(head, dict) else None, identity,
        )  # fmt: skip
    return Delivery(GITHUB, None, urls, None, None, identity, f"event {event!r} is not acted on")


def parse_gitlab(headers: Mapping[str, str], body: bytes) -> Delivery:
    """`X-Gitlab-Event: Push Hook` / `Merge Request Hook` (GitLab's webhook events docs)."""
    event = _header(headers, "X-Gitlab-Event")
    if not event:
        raise Refusal(400, "missing X-Gitlab-Event")
    payload = _json_object(body)
    identity = delivery_id(headers, body, "X-Gitlab-Event-UUID", "Idempotency-Key")
    project = payload.get("project")
    project = project if isinstance(project, dict) else {}
    repository = payload.get("repository")
    repository = repository if isinstance(repository, dict) else {}
    urls = _urls(project.get("git_http_url"), project.get("web_url"),
                 project.get("git_ssh_url"), repository.get("git_http_url"),
                 repository.get("homepage"))  # fmt: skip
    kind = _text(payload.get("object_kind"))
    if event == "Push Hook" or kind == "push":
        return _push(GITLAB, urls, payload.get("ref"), payload.get("after"), identity)
    if event == "Merge Request Hook" or kind == "merge_request":
        attributes = payload.get("object_attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        last = attributes.get("last_commit")
        return _pull_request(
            GITLAB, urls, _text(attributes.get("action")), GITLAB_MR_ACTIONS,
            attributes.get("target_branch"), last.get("id") if isinstance(last, dict) else None,
            identity,
        )  # fmt: skip
    return Delivery(GITLAB, None, urls, None, None, identity, f"event {event!r} is not acted on")


def parse_generic(headers: Mapping[str, str], body: bytes) -> Delivery:
    """buildwright's own push format for plain Git servers (a post-receive hook):
    `{"repository": URL, "ref": "refs/heads/B", "after": SHA}`, optional `"id"`."""
    payload = _json_object(body)
    repository = _text(payload.get("repository"))
    if repository is None:
        raise Refusal(400, "the body names no repository")
    given = _text(payload.get("id"))
    identity = _printable(given) if given else delivery_id(headers, body, "X-Delivery-Id")
    return _push(GENERIC, (repository,), payload.get("ref"), payload.get("after"), identity)


PARSERS = {GITHUB: parse_github, GITLAB: parse_gitlab, GENERIC: parse_generic}


# --- signatures ------------------------------------------------------------------------------


def hmac_signature(secret: bytes, body: bytes) -> str:
    """`sha256=<hex>`: GitHub's `X-Hub-Signature-256` of `body` with `secret`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(provider: str, secret: bytes, headers: Mapping[str, str],
                      body: bytes) -> bool:  # fmt: skip
    """Whether the delivery carries proof of `secret`, compared in constant time: GitHub and
    generic an HMAC-SHA256 of the body (`X-Hub-Signature-256`), GitLab the token itself
    (`X-Gitlab-Token`)."""
    if not secret:
        return False
    if provider == GITLAB:
        token = _header(headers, "X-Gitlab-Token").encode()
        return bool(token) and hmac.compare_digest(token, secret)
    given = _header(headers, "X-Hub-Signature-256").encode()
    return bool(given) and hmac.compare_digest(given, hmac_signature(secret, body).encode())


def signature_present(provider: str, headers: Mapping[str, str]) -> bool:
    name = "X-Gitlab-Token" if provider == GITLAB else "X-Hub-Signature-256"
    return bool(_header(headers, name))


def missing_signature(provider: str) -> Refusal:
    name = "X-Gitlab-Token" if provider == GITLAB else "X-Hub-Signature-256"
    return Refusal(401, f"missing {name}")


def webhook_secret(data: Mapping[str, bytes], provider: str) -> bytes | None:
    """The webhook secret of a trigger Secret's (decoded) data: the provider's key, else
    `token`, else the only key the Secret has."""
    for key in SECRET_KEYS[provider]:
        if data.get(key):
            return data[key].strip()
    if len(data) == 1:
        (value,) = data.values()
        return value.strip() or None
    return None


# --- repositories, branches, Builds ----------------------------------------------------------

_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.*)$")


def normalise_repository_url(url: str) -> str:
    """`host[:port]/path` for comparing repository URLs: scheme, user, a default port, a
    trailing `/` or `.git` and the case of the host do not tell repositories apart; the
    path's case does (most servers keep it), and a port other than the scheme's default."""
    text = url.strip()
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if scp is None:
            return text.rstrip("/").removesuffix(".git").rstrip("/")
        host, path, port = scp.group(1), scp.group(2), None
    else:
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname or ""
        path = parts.path
        if port == _DEFAULT_PORTS.get(parts.scheme.lower()):
            port = None
    path = path.strip("/").removesuffix(".git").rstrip("/")
    netloc = host.lower() + (f":{port}" if port else "")
    return f"{netloc}/{path}"


def source_url(build: Build) -> str | None:
    source = build.spec.source
    if source is None or source.git is None:
        return None
    return source.git.url or None


def repository_matches(build: Build, delivery: Delivery) -> bool:
    url = source_url(build)
    if url is None:
        return False
    return normalise_repository_url(url) in delivery.normalised_urls


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's `path.Match` syntax: `*` any run of characters but `/`, `?` one such character,
    `[...]` a class (`[!...]`/`[^...]` negated), `\\` escapes; plus `**`, any run at all."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def branch_matches(patterns: list[str] | None, branch: str) -> bool:
    """Whether `branch` is one of `patterns` (globs); no patterns means every branch."""
    if not patterns:
        return True
    for pattern in patterns:
        try:
            if _glob(pattern).fullmatch(branch):
                return True
        except re.error:
            if pattern == branch:
                return True
    return False


def matching_whens(build: Build, delivery: Delivery) -> list[TriggerWhen]:
    """The Build's `type: GitHub` entries that this delivery satisfies (any provider)."""
    if delivery.event is None or delivery.branch is None or delivery.ignored:
        return []
    if not repository_matches(build, delivery):
        return []
    found = []
    for when in (build.spec.trigger.when if build.spec.trigger else None) or ():
        if when.type != "GitHub" or when.github is None:
            continue
        if delivery.event in (when.github.events or ()) and branch_matches(
            when.github.branches, delivery.branch
        ):
            found.append(when)
    return found


def is_candidate(build: Build, delivery: Delivery) -> bool:
    """Whether the Build's source is the delivery's repository and it has a GitHub trigger:
    then its secret may vouch for the delivery (matching `when[]` comes after)."""
    trigger = build.spec.trigger
    return (
        trigger is not None
        and any(w.type == "GitHub" for w in trigger.when or ())
        and repository_matches(build, delivery)
    )


# --- the BuildRuns ---------------------------------------------------------------------------

BUILDRUN_NAME_MAX = 63  # it becomes a label value (buildrun.shipwright.io/name)


def buildrun_name(build_name: str, build_uid: str, cause: str) -> str:
    """`<build>-<hash of uid and cause>`: the same cause of the same Build, the same name."""
    digest = hashlib.sha256(f"{build_uid}\n{cause}".encode()).hexdigest()[:10]
    prefix = build_name[: BUILDRUN_NAME_MAX - len(digest) - 1].rstrip("-.")
    return f"{prefix}-{digest}"


def _label_safe(value: str) -> str:
    if is_valid_label_value(value):
        return value
    return "sha256-" + hashlib.sha256(value.encode()).hexdigest()[:40]


def _buildrun(build: Build, name: str, labels: dict[str, str],
              annotations: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    meta = build.metadata
    return {
        "apiVersion": "shipwright.io/v1beta1",
        "kind": "BuildRun",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {BUILD_NAME_LABEL: meta["name"], **labels},
            "annotations": annotations,
        },
        "spec": {"build": {"name": meta["name"]}},
    }


def webhook_buildrun(build: Build, delivery: Delivery, when: TriggerWhen) -> dict[str, Any]:
    """The one BuildRun this delivery makes for this Build (named by the delivery id: one
    per Build and delivery, whichever of its `when[]` entries matched first)."""
    meta = build.metadata
    name = buildrun_name(meta["name"], meta.get("uid", ""), f"delivery\n{delivery.delivery_id}")
    return _buildrun(
        build, name,
        {LABEL_KIND: delivery.provider, LABEL_DELIVERY: _label_safe(delivery.delivery_id)},
        {ANNOTATION_TRIGGER: when.name, ANNOTATION_DELIVERY: delivery.delivery_id,
         ANNOTATION_EVENT: delivery.event or "", ANNOTATION_BRANCH: delivery.branch or "",
         ANNOTATION_REVISION: delivery.revision or ""},
    )  # fmt: skip


# --- image triggers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchedImage:
    trigger: str
    image: str


def watched_images(build: Build) -> list[WatchedImage]:
    """Every (when name, image) of the Build's `type: Image` entries, each image once."""
    seen: dict[str, WatchedImage] = {}
    for when in (build.spec.trigger.when if build.spec.trigger else None) or ():
        if when.type == "Image" and when.image is not None:
            for image in when.image.names or ():
                if image and image not in seen:
                    seen[image] = WatchedImage(when.name, image)
    return list(seen.values())


@dataclass(frozen=True)
class ImageRecord:
    """What the Build's status says was last seen of an image: its digest ('' = the image
    did not exist) and how many changes started a BuildRun so far."""

    digest: str
    changes: int = 0


def recorded_images(status: Mapping[str, Any] | None) -> dict[str, ImageRecord]:
    out = {}
    for entry in (status or {}).get("imageDigests") or ():
        if isinstance(entry, dict) and isinstance(entry.get("image"), str):
            changes = entry.get("changes")
            out[entry["image"]] = ImageRecord(
                str(entry.get("digest") or ""), changes if isinstance(changes, int) else 0
            )
    return out


@dataclass(frozen=True)
class ImageDecision:
    record: ImageRecord
    """What to write on the Build for this image."""
    run: bool
    """Whether the change starts a BuildRun."""


def image_decision(previous: ImageRecord | None, observed: str) -> ImageDecision:
    """First sight records a baseline (nothing was seen to change); a different digest than
    recorded — including an image appearing that was recorded absent — starts a BuildRun; an
    image that disappears is recorded absent without one."""
    if previous is None:
        return ImageDecision(ImageRecord(observed), run=False)
    if observed == previous.digest:
        return ImageDecision(previous, run=False)
    if not observed:
        return ImageDecision(ImageRecord("", previous.changes), run=False)
    return ImageDecision(ImageRecord(observed, previous.changes + 1), run=True)


def image_buildrun(build: Build, watched: WatchedImage, previous: ImageRecord,
                   digest: str) -> dict[str, Any]:  # fmt: skip
    """The one BuildRun of the image's next change (numbered, so that a digest that comes
    back later is a new change, and a retry of this one is not)."""
    meta = build.metadata
    cause = f"image\n{watched.image}\n{previous.changes}\n{digest}"
    return _buildrun(
        build, buildrun_name(meta["name"], meta.get("uid", ""), cause),
        {LABEL_KIND: "image"},
        {ANNOTATION_TRIGGER: watched.trigger, ANNOTATION_IMAGE: watched.image,
         ANNOTATION_DIGEST: digest, ANNOTATION_PREVIOUS_DIGEST: previous.digest},
    )  # fmt: skip


def image_status(records: Mapping[str, ImageRecord], watched: Iterable[WatchedImage]
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """`status.imageDigests` for the images still watched, in the Build's order."""
    return [
        {"image": w.image, "digest": records[w.image].digest, "changes": records[w.image].changes}
        for w in watched if w.image in records
    ]  # fmt: skip


def poll_delay(interval: float, failures: int, *, cap: float = 600.0) -> float:
    """Seconds until an image is polled again: the interval, doubled per failure in a row
    (registry down, throttling), never more than `cap` (or the interval, if larger)."""
    if failures <= 0:
        return interval
    delay: float = min(interval * 2.0 ** min(failures, 16), max(cap, interval))
    return delay


def last_triggered(name: str, trigger: str, cause: str, at: str) -> dict[str, Any]:
    """`status.lastTriggeredRun` of the Build (shown by `kubectl get builds`)."""
    return {"name": name, "trigger": trigger, "cause": cause[:300], "time": at}


def revision_override(annotations: Mapping[str, str] | None) -> str | None:
    """The commit a triggered BuildRun builds: a hex commit id only, else none."""
    value = (annotations or {}).get(ANNOTATION_REVISION, "")
    return value if _SHA.fullmatch(value) else None
