"""spec.trigger for real: `git push` to a bare repository whose post-receive hook posts a
signed GitHub-format delivery makes exactly one BuildRun, which clones and builds the pushed
commit and pushes the image; a redelivery, a bad signature and a push to a branch the trigger
does not list make none; a new image pushed under a watched name starts one BuildRun within
the poll interval.

The module runs its own operator (the session's is stopped meanwhile) with the receiver on a
known loopback port over HTTPS and a short poll interval.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.gitserver import GitDaemon, commit, git
from tests.integration.operator_process import OperatorProcess
from tests.integration.test_triggers import operator_with_triggers
from tests.registry import LocalRegistry

from buildwright.core import triggers as t
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.process_executor import ProcessExecutor
from buildwright_localcluster.wait import wait_until
from e2e.local.conftest import AppRepo
from e2e.local.test_real_builds import Env, skopeo_digest, succeeded

SECRET = "e2e-webhook-secret"
POLL_SECONDS = 2.0

# The post-receive hook's delivery: GitHub's push payload (the fields the receiver reads),
# signed with the Build's secret; the request is also saved so the test can replay it.
HOOK = textwrap.dedent('''\
    import hashlib, hmac, json, pathlib, ssl, sys, urllib.error, urllib.request, uuid
    url, secret, clone_url, saved = sys.argv[1:5]
    for line in sys.stdin:
        old, new, ref = line.split()
        body = json.dumps({"ref": ref, "before": old, "after": new,
                           "repository": {"clone_url": clone_url}}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                   "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": "sha256=" + hmac.new(
                       secret.encode(), body, hashlib.sha256).hexdigest()}
        pathlib.Path(saved).write_text(json.dumps({"headers": headers, "body": body.decode()}))
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                print("delivered:", answer.status, answer.read().decode())
        except urllib.error.HTTPError as error:
            print("delivered:", error.code, error.read().decode())
''')


@pytest.fixture(scope="module")
def trigger_operator(
    operator: OperatorProcess, registry: LocalRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OperatorProcess, int]]:  # fmt: skip
    with operator_with_triggers(operator, tmp_path_factory.mktemp("trigger-operator"),
                                registry.host, POLL_SECONDS) as running:  # fmt: skip
        yield running


@pytest.fixture
def env(namespace: str, api_client: client.ApiClient,
        trigger_operator: tuple[OperatorProcess, int], executor: ProcessExecutor,
        node_agent: KubeletStandIn) -> Env:  # fmt: skip
    return Env(namespace, api_client, trigger_operator[0], executor)


def post(url: str, headers: dict[str, str], body: bytes) -> int:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def runs_of(env: Env, build: str) -> list[dict[str, Any]]:
    listing = env.custom.list_namespaced_custom_object(
        "shipwright.io", "v1beta1", env.namespace, "buildruns",
        label_selector=f"build.shipwright.io/name={build}",
    )  # fmt: skip
    items: list[dict[str, Any]] = listing["items"]
    return items


def test_git_push_builds_the_pushed_commit_once(
    env: Env, trigger_operator: tuple[OperatorProcess, int], repos: AppRepo,
    git_daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    _, port = trigger_operator
    bare_name = f"hooked-{env.namespace}.git"
    bare = repos.base / bare_name
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    saved = tmp_path / "delivery.json"
    hook_script = tmp_path / "post-receive.py"
    hook_script.write_text(HOOK)
    clone_url = git_daemon.url(bare_name)
    hook_url = f"https://127.0.0.1:{port}/hooks/{env.namespace}/github"
    hook = bare / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{hook_script}' '{hook_url}' "
                    f"'{SECRET}' '{clone_url}' '{saved}'\n")  # fmt: skip
    hook.chmod(0o755)

    image = f"{registry.host}/{env.namespace}/hooked:latest"
    env.secret("webhook", "Opaque", {"github-token": SECRET})
    env.create("builds", {
        "apiVersion": "shipwright.io/v1beta1", "kind": "Build", "metadata": {"name": "hooked"},
        "spec": {
            "source": {"type": "Git", "git": {"url": clone_url}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": image, "insecure": True},
            "trigger": {"triggerSecret": "webhook", "when": [
                {"name": "main", "type": "GitHub",
                 "github": {"events": ["Push"], "branches": ["main"]}},
            ]},
        },
    })  # fmt: skip
    wait_until(lambda: (env.get("builds", "hooked").get("status") or {}).get("registered")
               == "True", timeout=30, description="Build hooked registered")  # fmt: skip

    work = tmp_path / "work"
    work.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=work)
    first = commit(work, "first", {"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
                                   "hello.txt": "pushed one\n"}, "Dana Dev", 1_700_001_000)
    pushed = commit(work, "second", {"hello.txt": "pushed two\n"}, "Dana Dev", 1_700_001_100)
    assert first != pushed
    output = subprocess.run(["git", "push", str(bare), "main"], cwd=work, capture_output=True,
                            text=True, check=True, timeout=60).stderr  # fmt: skip
    assert "delivered: 202" in output, output

    (run,) = wait_until(lambda: runs_of(env, "hooked"), timeout=30,
                        description="the triggered BuildRun")  # fmt: skip
    name = run["metadata"]["name"]
    done = env.finished(name)
    assert succeeded(done)["status"] == "True", env.diagnostics(name)
    assert done["status"]["source"]["git"]["commitSha"] == pushed
    assert done["status"]["output"]["digest"] == skopeo_digest(image)
    assert env.get("builds", "hooked")["status"]["lastTriggeredRun"]["name"] == name

    delivery = json.loads(saved.read_text())
    body = delivery["body"].encode()
    # The same delivery again (GitHub's "Redeliver"): accepted, nothing new.
    assert post(hook_url, delivery["headers"], body) == 202
    # Wrongly signed: refused.
    forged = {**delivery["headers"], "X-Hub-Signature-256": t.hmac_signature(b"guess", body)}
    assert post(hook_url, forged, body) == 401
    # A push to a branch the trigger does not list: delivered, nothing built.
    commit(work, "feature", {"feature.txt": "x\n"}, "Dana Dev", 1_700_001_200)
    output = subprocess.run(["git", "push", str(bare), "main:feature"], cwd=work,
                            capture_output=True, text=True, check=True, timeout=60).stderr
    assert "delivered: 202" in output and '"buildRuns": []' in output, output
    # The operator answered all three before this list; there is still the one BuildRun.
    assert [r["metadata"]["name"] for r in runs_of(env, "hooked")] == [name]


def buildah_push(tmp_path: Path, image: str, content: str) -> str:
    """Build a one-file image with buildah and push it; its digest in the registry."""
    context = tmp_path / f"context-{abs(hash(content))}"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY base.txt /base.txt\n")
    (context / "base.txt").write_text(content)
    storage = ["--storage-driver", "vfs", "--root", str(tmp_path / "buildah-root"),
               "--runroot", str(tmp_path / "buildah-runroot")]  # fmt: skip
    subprocess.run(["buildah", *storage, "bud", "--isolation", "chroot",
                    "-t", image, str(context)], check=True, capture_output=True, timeout=120)
    digest_file = tmp_path / "digest"
    subprocess.run(["buildah", *storage, "push", "--tls-verify=false", "--digestfile",
                    str(digest_file), image, f"docker://{image}"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return digest_file.read_text().strip()


def test_a_new_image_under_a_watched_name_starts_one_buildrun(
    env: Env, repos: AppRepo, git_daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    base = f"{registry.host}/{env.namespace}/base:latest"
    first = buildah_push(tmp_path, base, "base one\n")
    env.create("builds", {
        "apiVersion": "shipwright.io/v1beta1", "kind": "Build", "metadata": {"name": "rebase"},
        "spec": {
            "source": {"type": "Git", "git": {"url": git_daemon.url("app")}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": f"{registry.host}/{env.namespace}/app:latest", "insecure": True},
            "trigger": {"when": [{"name": "base", "type": "Image", "image": {"names": [base]}}]},
        },
    })  # fmt: skip

    def recorded() -> str | None:
        digests = (env.get("builds", "rebase").get("status") or {}).get("imageDigests") or []
        return next((d["digest"] for d in digests if d["image"] == base), None)

    wait_until(lambda: recorded() == first, timeout=30, description="the baseline digest")
    assert runs_of(env, "rebase") == []

    second = buildah_push(tmp_path, base, "base two\n")
    assert second != first and skopeo_digest(base) == second
    pushed_at = time.monotonic()
    (run,) = wait_until(lambda: runs_of(env, "rebase"), timeout=2 * POLL_SECONDS + 10,
                        description="a BuildRun for the new base image")  # fmt: skip
    waited = time.monotonic() - pushed_at
    print(f"\nimage trigger: BuildRun {waited:.1f}s after the push (poll interval "
          f"{POLL_SECONDS:g}s)")  # fmt: skip
    assert run["metadata"]["annotations"][t.ANNOTATION_DIGEST] == second
    done = env.finished(run["metadata"]["name"])
    assert succeeded(done)["status"] == "True", env.diagnostics(run["metadata"]["name"])
    assert done["status"]["source"]["git"]["commitSha"] == repos.head
    # Polls of the unchanged image go on; none makes a second BuildRun.
    wait_until(lambda: recorded() == second, timeout=10, description="the new digest recorded")
    before = unchanged_polls(env.operator)
    wait_until(lambda: unchanged_polls(env.operator) >= before + 3, timeout=6 * POLL_SECONDS + 10,
               description="three more polls of the unchanged image")  # fmt: skip
    assert len(runs_of(env, "rebase")) == 1


def unchanged_polls(operator: OperatorProcess) -> float:
    _, text = operator.scrape()
    prefix = 'buildwright_trigger_image_polls_total{outcome="unchanged"}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))  # fmt: skip
