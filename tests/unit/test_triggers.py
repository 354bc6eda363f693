"""The trigger decisions: parsing deliveries, signatures, URLs, globs, names, image changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from buildwright.api.v1beta1 import Build, BuildRunSpec, BuildSpec
from buildwright.core import resolve
from buildwright.core import triggers as t

SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
SHA2 = "1111111111111111111111111111111111111111"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def build(url: str = "https://github.com/Org/Repo", *whens: dict[str, Any],
          name: str = "app", uid: str = "uid-1") -> Build:  # fmt: skip
    return Build.model_validate({
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {
            "source": {"type": "Git", "git": {"url": url}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": "registry.test/app:latest"},
            "trigger": {"triggerSecret": "hook", "when": list(whens) or [
                {"name": "push to main", "type": "GitHub",
                 "github": {"events": ["Push"], "branches": ["main"]}},
            ]},
        },
    })  # fmt: skip


def github_push(ref: str = "refs/heads/main", after: str = SHA,
                url: str = "https://github.com/Org/Repo.git") -> bytes:  # fmt: skip
    return json.dumps({
        "ref": ref, "after": after,
        "repository": {"clone_url": url, "html_url": url.removesuffix(".git")},
    }).encode()  # fmt: skip


def headers(**values: str) -> dict[str, str]:
    return {k.replace("_", "-").lower(): v for k, v in values.items()}


# --- parsing ---------------------------------------------------------------------------------


def test_github_push_is_one_event_shape() -> None:
    delivery = t.parse_github(
        headers(X_GitHub_Event="push", X_GitHub_Delivery="d-1"), github_push()
    )
    assert delivery == t.Delivery(
        "github", t.PUSH, ("https://github.com/Org/Repo.git", "https://github.com/Org/Repo"),
        "main", SHA, "d-1",
    )  # fmt: skip


def test_github_pull_request_targets_its_base_branch_and_builds_its_head() -> None:
    body = json.dumps({
        "action": "synchronize",
        "repository": {"clone_url": "https://github.com/Org/Repo.git"},
        "pull_request": {"base": {"ref": "main"}, "head": {"sha": SHA, "ref": "topic"}},
    }).encode()  # fmt: skip
    delivery = t.parse_github(headers(X_GitHub_Event="pull_request"), body)
    assert (delivery.event, delivery.branch, delivery.revision) == (t.PULL_REQUEST, "main", SHA)
    assert delivery.ignored is None
    closed = t.parse_github(headers(X_GitHub_Event="pull_request"),
                            body.replace(b"synchronize", b"closed"))  # fmt: skip
    assert closed.ignored == "pull request action 'closed' is not acted on"


@pytest.mark.parametrize(("event", "body", "ignored"), [
    ("ping", b'{"zen": "x"}', "event 'ping' is not acted on"),
    ("push", github_push(ref="refs/tags/v1"), "refs/tags/v1 is not a branch"),
    ("push", github_push(after="0" * 40), "branch main was deleted"),
])  # fmt: skip
def test_github_events_nothing_acts_on_are_ignored(event: str, body: bytes, ignored: str) -> None:
    assert t.parse_github(headers(X_GitHub_Event=event), body).ignored == ignored


@pytest.mark.parametrize(("hdrs", "body", "reason"), [
    ({}, github_push(), "missing X-GitHub-Event"),
    (headers(X_GitHub_Event="push"), b"not json", "the body is not JSON"),
    (headers(X_GitHub_Event="push"), b"[1]", "the body is not a JSON object"),
    (headers(X_GitHub_Event="push"), b'{"after": "1234567"}', "the push names no ref"),
    (headers(X_GitHub_Event="push"), github_push(after="; rm -rf /"), "the push names no commit"),
])  # fmt: skip
def test_malformed_deliveries_are_refused_400(hdrs: dict[str, str], body: bytes,
                                              reason: str) -> None:  # fmt: skip
    with pytest.raises(t.Refusal) as refused:
        t.parse_github(hdrs, body)
    assert (refused.value.status, refused.value.reason) == (400, reason)


def test_gitlab_push_and_merge_request() -> None:
    push = json.dumps({
        "object_kind": "push", "ref": "refs/heads/main", "after": SHA,
        "project": {"git_http_url": "https://gitlab.com/org/repo.git",
                    "git_ssh_url": "git@gitlab.com:org/repo.git"},
    }).encode()  # fmt: skip
    delivery = t.parse_gitlab(
        headers(X_Gitlab_Event="Push Hook", X_Gitlab_Event_UUID="u-1"), push
    )
    assert (delivery.provider, delivery.event, delivery.branch, delivery.delivery_id) == (
        "gitlab", t.PUSH, "main", "u-1",
    )  # fmt: skip
    merge = json.dumps({
        "object_kind": "merge_request",
        "project": {"git_http_url": "https://gitlab.com/org/repo.git"},
        "object_attributes": {"action": "open", "target_branch": "main",
                              "last_commit": {"id": SHA}},
    }).encode()  # fmt: skip
    request = t.parse_gitlab(headers(X_Gitlab_Event="Merge Request Hook"), merge)
    assert (request.event, request.branch, request.revision, request.ignored) == (
        t.PULL_REQUEST, "main", SHA, None,
    )  # fmt: skip


def test_generic_push_and_the_delivery_id_of_a_body_without_one() -> None:
    body = json.dumps({"repository": "git://127.0.0.1:9418/hello", "ref": "refs/heads/main",
                       "after": SHA}).encode()  # fmt: skip
    first = t.parse_generic({}, body)
    assert (first.provider, first.event, first.branch, first.revision) == (
        "generic", t.PUSH, "main", SHA,
    )  # fmt: skip
    # A redelivery repeats the body, so it repeats the id; another push does not.
    assert t.parse_generic({}, body).delivery_id == first.delivery_id
    other = body.replace(SHA.encode(), SHA2.encode())
    assert t.parse_generic({}, other).delivery_id != first.delivery_id
    # A caller's id reaches logs and Events: one line, bounded.
    forged = json.dumps({"repository": "r", "ref": "refs/heads/main", "after": SHA,
                         "id": "x\nFAKE LOG LINE" + "y" * 500}).encode()  # fmt: skip
    identity = t.parse_generic({}, forged).delivery_id
    assert "\n" not in identity and len(identity) == 200 and identity.startswith("x?FAKE")
    with pytest.raises(t.Refusal, match="names no repository"):
        t.parse_generic({}, b'{"ref": "refs/heads/main"}')


# --- signatures ------------------------------------------------------------------------------


def test_github_signature_is_an_hmac_of_the_exact_body() -> None:
    body = github_push()
    good = headers(X_Hub_Signature_256=t.hmac_signature(b"s3cret", body))
    assert t.signature_matches("github", b"s3cret", good, body)
    assert not t.signature_matches("github", b"other", good, body)
    assert not t.signature_matches("github", b"s3cret", good, body + b" ")
    assert not t.signature_matches("github", b"s3cret", {}, body)
    assert not t.signature_matches("github", b"", good, body)
    # The old SHA-1 header alone is not accepted.
    assert not t.signature_matches("github", b"s3cret", headers(X_Hub_Signature="sha1=x"), body)


def test_gitlab_token_is_compared_as_is() -> None:
    assert t.signature_matches("gitlab", b"tok", headers(X_Gitlab_Token="tok"), b"{}")
    assert not t.signature_matches("gitlab", b"tok", headers(X_Gitlab_Token="tok2"), b"{}")
    assert not t.signature_matches("gitlab", b"tok", {}, b"{}")
    assert t.missing_signature("gitlab").reason == "missing X-Gitlab-Token"
    assert t.missing_signature("github").status == 401


def test_webhook_secret_key_lookup() -> None:
    assert t.webhook_secret({"github-token": b"a\n", "token": b"b"}, "github") == b"a"
    assert t.webhook_secret({"token": b"b", "other": b"c"}, "gitlab") == b"b"
    assert t.webhook_secret({"whatever": b"only"}, "github") == b"only"
    assert t.webhook_secret({"x": b"1", "y": b"2"}, "github") is None
    assert t.webhook_secret({}, "generic") is None


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    ("https://github.com/Org/Repo", "https://GitHub.com/Org/Repo.git"),
    ("https://github.com/Org/Repo/", "http://github.com:80/Org/Repo"),
    ("git@github.com:Org/Repo.git", "https://github.com/Org/Repo"),
    ("ssh://git@github.com:22/Org/Repo.git", "https://user:pw@github.com/Org/Repo"),
    ("git://127.0.0.1:9418/hello", "http://127.0.0.1/hello"),
    ("https://gitlab.example.com:8443/g/sub/repo.git", "https://gitlab.example.com:8443/g/sub/repo"),
])  # fmt: skip
def test_repository_urls_that_are_the_same_repository(a: str, b: str) -> None:
    assert t.normalise_repository_url(a) == t.normalise_repository_url(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://github.com/Org/Repo", "https://github.com/Org/Repo2"),
    ("https://github.com/Org/Repo", "https://github.com/org/repo"),
    ("https://gitlab.example.com:8443/g/repo", "https://gitlab.example.com/g/repo"),
    ("https://github.com/Org/Repo", "https://github.example.com/Org/Repo"),
])  # fmt: skip
def test_repository_urls_that_differ(a: str, b: str) -> None:
    assert t.normalise_repository_url(a) != t.normalise_repository_url(b)


@pytest.mark.parametrize(("patterns", "branch", "expected"), [
    (["main"], "main", True),
    (["main"], "main2", False),
    (["release-*"], "release-1.2", True),
    (["release-*"], "release/1.2", False),
    (["release/*"], "release/1.2", True),
    (["release/*"], "release/1.2/hotfix", False),
    (["release/**"], "release/1.2/hotfix", True),
    (["v?"], "v1", True),
    (["v[0-9]"], "v7", True),
    (["v[!0-9]"], "v7", False),
    (["feature.x"], "featureAx", False),  # '.' is literal
    (None, "anything", True),
    ([], "anything", True),
    (["[unclosed"], "[unclosed", True),
])  # fmt: skip
def test_branch_globs(patterns: list[str] | None, branch: str, expected: bool) -> None:
    assert t.branch_matches(patterns, branch) is expected


def _push(branch: str = "main", url: str = "https://github.com/Org/Repo.git",
          event: str = t.PUSH) -> t.Delivery:  # fmt: skip
    return t.Delivery("github", event, (url,), branch, SHA, "d-1")


def test_which_whens_match() -> None:
    b = build(
        "https://github.com/Org/Repo",
        {"name": "main", "type": "GitHub", "github": {"events": ["Push"], "branches": ["main"]}},
        {"name": "prs", "type": "GitHub", "github": {"events": ["PullRequest"]}},
        {"name": "image", "type": "Image", "image": {"names": ["x"]}},
    )  # fmt: skip
    assert [w.name for w in t.matching_whens(b, _push())] == ["main"]
    assert t.matching_whens(b, _push(branch="dev")) == []
    assert [w.name for w in t.matching_whens(b, _push(event=t.PULL_REQUEST))] == ["prs"]
    assert t.matching_whens(b, _push(url="https://github.com/Org/Other")) == []
    ignored = t.Delivery("github", t.PUSH, ("https://github.com/Org/Repo",), "main", SHA, "d",
                         ignored="x")  # fmt: skip
    assert t.matching_whens(b, ignored) == []


def test_candidates_need_the_repository_and_a_github_trigger() -> None:
    same = build(name="same")
    other = build("https://github.com/Org/Other", name="other")
    image_only = build(
        "https://github.com/Org/Repo", {"name": "i", "type": "Image", "image": {"names": ["x"]}},
        name="image-only",
    )  # fmt: skip
    found = [b.metadata["name"] for b in (same, other, image_only) if t.is_candidate(b, _push())]
    assert found == ["same"]


# --- names and BuildRuns -----------------------------------------------------------------------


def test_buildrun_names_are_deterministic_short_and_per_build() -> None:
    name = t.buildrun_name("app", "uid-1", "delivery\nd-1")
    assert name == t.buildrun_name("app", "uid-1", "delivery\nd-1")
    assert name.startswith("app-") and len(name) == len("app-") + 10
    assert t.buildrun_name("app", "uid-2", "delivery\nd-1") != name  # a recreated Build
    assert t.buildrun_name("app", "uid-1", "delivery\nd-2") != name
    long = t.buildrun_name("a" * 80 + ".x", "u", "c")
    assert len(long) <= 63 and not long.split("-")[0].endswith(".")


def test_webhook_buildrun_names_build_trigger_delivery_and_commit() -> None:
    b = build()
    run = t.webhook_buildrun(b, _push(), b.spec.trigger.when[0])  # type: ignore[union-attr]
    assert run["spec"] == {"build": {"name": "app"}}
    meta = run["metadata"]
    assert meta["namespace"] == "ns"
    assert meta["labels"] == {"build.shipwright.io/name": "app", t.LABEL_KIND: "github",
                              t.LABEL_DELIVERY: "d-1"}  # fmt: skip
    assert meta["annotations"][t.ANNOTATION_TRIGGER] == "push to main"
    assert meta["annotations"][t.ANNOTATION_REVISION] == SHA
    odd = t.Delivery("github", t.PUSH, (), "main", SHA, "not a label/value")
    label = t.webhook_buildrun(b, odd, b.spec.trigger.when[0])["metadata"]["labels"]  # type: ignore[union-attr]
    assert label[t.LABEL_DELIVERY].startswith("sha256-")


def test_the_revision_override_replaces_the_git_revision_only_for_a_commit() -> None:
    spec = BuildSpec.model_validate({
        "source": {"type": "Git", "git": {"url": "https://x/y", "revision": "main"}},
        "strategy": {"name": "s"}, "output": {"image": "r/i"},
    })  # fmt: skip
    run = BuildRunSpec.model_validate({"build": {"name": "b"}})
    override = t.revision_override({t.ANNOTATION_REVISION: SHA})
    assert resolve.effective_build_spec(spec, run, override).source.git.revision == SHA  # type: ignore[union-attr]
    assert resolve.effective_build_spec(spec, run).source.git.revision == "main"  # type: ignore[union-attr]
    assert t.revision_override({t.ANNOTATION_REVISION: "$(rm -rf /)"}) is None
    assert t.revision_override({t.ANNOTATION_REVISION: "--upload-pack=x"}) is None
    assert t.revision_override(None) is None


# --- images ------------------------------------------------------------------------------------


def test_watched_images_once_each() -> None:
    b = build(
        "https://x/y",
        {"name": "base", "type": "Image", "image": {"names": ["r/base:1", "r/tools"]}},
        {"name": "again", "type": "Image", "image": {"names": ["r/base:1"]}},
        {"name": "git", "type": "GitHub", "github": {"events": ["Push"]}},
    )  # fmt: skip
    assert t.watched_images(b) == [t.WatchedImage("base", "r/base:1"),
                                   t.WatchedImage("base", "r/tools")]  # fmt: skip


def test_image_changes() -> None:
    first = t.image_decision(None, DIGEST_A)
    assert first == t.ImageDecision(t.ImageRecord(DIGEST_A), run=False)  # a baseline
    assert t.image_decision(first.record, DIGEST_A).run is False
    changed = t.image_decision(first.record, DIGEST_B)
    assert changed == t.ImageDecision(t.ImageRecord(DIGEST_B, 1), run=True)
    gone = t.image_decision(changed.record, "")
    assert gone == t.ImageDecision(t.ImageRecord("", 1), run=False)
    back = t.image_decision(gone.record, DIGEST_A)
    assert back == t.ImageDecision(t.ImageRecord(DIGEST_A, 2), run=True)
    assert t.image_decision(None, "").record == t.ImageRecord("")  # seen absent first


def test_image_buildrun_names_tell_changes_apart_and_retries_not() -> None:
    b = build("https://x/y", {"name": "base", "type": "Image", "image": {"names": ["r/b"]}})
    watched = t.WatchedImage("base", "r/b")
    one = t.image_buildrun(b, watched, t.ImageRecord(DIGEST_A, 0), DIGEST_B)
    assert one == t.image_buildrun(b, watched, t.ImageRecord(DIGEST_A, 0), DIGEST_B)
    # A → B → A → B: the second change to B is a new BuildRun.
    again = t.image_buildrun(b, watched, t.ImageRecord(DIGEST_A, 2), DIGEST_B)
    assert again["metadata"]["name"] != one["metadata"]["name"]
    assert one["metadata"]["annotations"][t.ANNOTATION_DIGEST] == DIGEST_B
    assert one["metadata"]["labels"][t.LABEL_KIND] == "image"


def test_recorded_images_round_trip_through_the_status() -> None:
    watched = [t.WatchedImage("w", "r/a"), t.WatchedImage("w", "r/b")]
    records = {"r/a": t.ImageRecord(DIGEST_A, 3), "r/gone": t.ImageRecord(DIGEST_B)}
    status = {"imageDigests": t.image_status(records, watched)}
    assert status == {"imageDigests": [{"image": "r/a", "digest": DIGEST_A, "changes": 3}]}
    assert t.recorded_images(status) == {"r/a": t.ImageRecord(DIGEST_A, 3)}
    assert t.recorded_images(None) == {}
    assert t.recorded_images({"imageDigests": [{"digest": "x"}, "junk"]}) == {}


def test_poll_backoff() -> None:
    assert t.poll_delay(30, 0) == 30
    assert t.poll_delay(30, 1) == 60
    assert t.poll_delay(30, 3) == 240
    assert t.poll_delay(30, 50) == 600
    assert t.poll_delay(900, 2) == 900  # never more often than asked, never above the cap
