"""``buildwright-step git-source``: clone the Build's Git source into the Pod's workspace.

Runs as the init container ``step-source-default`` with the arguments of Shipwright's own Git
step (see :func:`build_parser`). On success it writes the commit sha, author, commit time and
(when no revision was asked for) the remote default branch as result files. On failure it
writes ``shp-error-reason``/``shp-error-message`` with one of the reasons of the Shipwright API
and exits 1, so the BuildRun's ``failureDetails`` tell the user what to fix.

Credentials come from a mounted Secret (``--secret-path``) and never reach argv, a URL, the
log, the result files or ``.git/config``:

* ``username`` + ``password`` (basic auth) are handed to Git by a ``GIT_ASKPASS`` helper that
  reads the mounted files when Git asks; the helper's own path is all Git ever sees.
* ``ssh-privatekey`` (+ optional ``known_hosts``) is copied with mode 0600 into a private
  temporary directory (ssh refuses group-readable keys, and Secret volumes are 0444) and
  passed through ``GIT_SSH_COMMAND``; without ``known_hosts`` new host keys are accepted.

Credential/URL combinations that cannot work are refused before Git runs:

* ssh key, URL not ssh ⇒ ``GitSSHAuthUnexpected`` (unless ``--git-url-rewrite`` turns
  ``https://host/`` into ``ssh://git@host/``);
* ssh URL and no ssh key (no Secret, or a basic-auth one) ⇒ ``GitSSHAuthExpected``: there is
  no other key in a build Pod, so such a clone cannot succeed;
* only one of username/password ⇒ ``GitBasicAuthIncomplete``;
* username/password for a plain ``http://`` URL ⇒ ``AuthUnexpectedHTTP``, because the password
  would cross the network in clear text. Loopback hosts (127.0.0.0/8, ::1, localhost) are
  exempt: nothing leaves the machine, and local test servers rarely have certificates.

One module, over 500 lines: one program that runs in the Pod, read top to bottom (credentials,
clone, checkout, submodules, results), with the table that turns git's errors into reasons
next to the calls that produce them.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from buildwright.core.contract import (
    RESULT_ERROR_MESSAGE,
    RESULT_ERROR_REASON,
    render_termination_message,
)
from buildwright.core.reasons import Reason
from buildwright.steps.resultfiles import write_result

SECRET_USERNAME = "username"
SECRET_PASSWORD = "password"
SECRET_SSH_KEY = "ssh-privatekey"
SECRET_KNOWN_HOSTS = "known_hosts"

MESSAGE_LIMIT = 300
"""Characters of an error message kept in the result file (it shares a 4 KiB budget)."""

SECRET_PATH_ENV = "BUILDWRIGHT_GIT_SECRET_PATH"


class AuthKind(enum.Enum):
    """How the clone authenticates."""

    NONE = "none"
    BASIC = "basic"
    SSH = "ssh"


class StepError(Exception):
    """A failure with its API reason and a message fit for the BuildRun status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class GitFailed(Exception):
    """A git command exited non-zero; ``output`` is what it printed (already scrubbed)."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


# --- URLs ------------------------------------------------------------------------------------

_SSH_SCHEME = re.compile(r"^(ssh|git\+ssh|ssh\+git)://", re.IGNORECASE)
# scp-like syntax, `[user@]host:path`, which Git treats as ssh when there is no `://` and no
# slash before the colon.
_SCP_LIKE = re.compile(r"^([^/@:]+@)?[^/:]+:")
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


def is_ssh_url(url: str) -> bool:
    """Whether Git would talk ssh to fetch ``url``."""
    if _SSH_SCHEME.match(url):
        return True
    return "://" not in url and bool(_SCP_LIKE.match(url))


def url_scheme(url: str) -> str:
    """``ssh``, ``https``, ``http``, ``git``, ``file`` or ``local`` (a plain path)."""
    if is_ssh_url(url):
        return "ssh"
    if "://" not in url:
        return "local"
    return url.split("://", 1)[0].lower()


def is_loopback_url(url: str) -> bool:
    """Whether the URL's host is this machine, so nothing it carries leaves the host."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrub_url(url: str) -> str:
    """``url`` without any user information (``https://user:token@h/`` ⇒ ``https://***@h/``)."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL user information and the given secret values replaced by ``***``."""
    text = scrub_url(text)
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def url_without_userinfo(url: str) -> str:
    """``url`` with user information removed entirely, for storing in ``.git/config``."""
    return _USERINFO.sub(r"\g<scheme>", url)


def is_commit_sha(revision: str) -> bool:
    """Whether a revision looks like an (abbreviated) commit sha rather than a branch or tag."""
    return bool(_COMMIT_SHA.match(revision))


# --- credentials -----------------------------------------------------------------------------


def choose_auth(
    url: str,
    secret_files: Collection[str] | None,
    *,
    url_rewrite: bool = False,
) -> AuthKind:
    """The authentication to use, given the file names in the clone Secret (``None``: no Secret).

    Raises :class:`StepError` for combinations that cannot work (see the module docstring).
    """
    ssh_url = is_ssh_url(url)
    scheme = url_scheme(url)
    if secret_files is None:
        if ssh_url:
            raise StepError(
                Reason.GIT_SSH_AUTH_EXPECTED,
                f"{scrub_url(url)} is an ssh URL, but no clone secret with an ssh-privatekey "
                "was given; set a kubernetes.io/ssh-auth secret as the source's cloneSecret",
            )
        return AuthKind.NONE
    if SECRET_SSH_KEY in secret_files:
        if ssh_url or (url_rewrite and scheme in ("http", "https")):
            return AuthKind.SSH
        raise StepError(
            Reason.GIT_SSH_AUTH_UNEXPECTED,
            f"the clone secret holds an ssh-privatekey, but {scrub_url(url)} is not an ssh URL; "
            "use an ssh URL (git@host:org/repo.git) or a basic-auth secret",
        )
    if ssh_url:
        raise StepError(
            Reason.GIT_SSH_AUTH_EXPECTED,
            f"{scrub_url(url)} is an ssh URL, but the clone secret has no ssh-privatekey; "
            "use a kubernetes.io/ssh-auth secret or an https URL",
        )
    has_user = SECRET_USERNAME in secret_files
    has_password = SECRET_PASSWORD in secret_files
    if has_user != has_password:
        missing = SECRET_PASSWORD if has_user else SECRET_USERNAME
        raise StepError(
            Reason.GIT_BASIC_AUTH_INCOMPLETE,
            f"the clone secret has no {missing!r}; basic authentication needs both "
            "'username' and 'password'",
        )
    if has_user:
        if scheme == "https" or (scheme == "http" and is_loopback_url(url)):
            return AuthKind.BASIC
        if scheme == "http":
            raise StepError(
                Reason.AUTH_UNEXPECTED_HTTP,
                f"refusing to send the clone secret's password in clear text to {scrub_url(url)}; "
                "use an https URL",
            )
        raise StepError(
            Reason.GIT_ERROR,
            f"username/password credentials only apply to http(s) URLs, not to {scheme} URLs "
            f"such as {scrub_url(url)}",
        )
    raise StepError(
        Reason.GIT_ERROR,
        "the clone secret has neither 'ssh-privatekey' nor 'username' and 'password'",
    )


def ssh_command(key_file: str, known_hosts: str | None, scratch_known_hosts: str) -> str:
    """The ``GIT_SSH_COMMAND`` for a key file (Git runs it through a shell, hence quoting)."""
    parts = [
        "ssh",
        "-i", key_file,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
    ]
    if known_hosts:
        parts += [
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
        ]
    else:
        parts += [
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={scratch_known_hosts}",
        ]
    return shlex.join(parts)


def askpass_program(python: str) -> str:
    """A ``GIT_ASKPASS`` helper: answers Git's username/password prompts from the Secret files.

    The Secret's directory comes from the environment, so no value ever becomes code.
    """
    interpreter = python if python and not re.search(r"\s", python) else "/usr/bin/env python3"
    return (
        f"#!{interpreter}\n"
        "import os, sys\n"
        "prompt = sys.argv[1] if len(sys.argv) > 1 else ''\n"
        f"name = {SECRET_USERNAME!r} if prompt.lower().startswith('username') "
        f"else {SECRET_PASSWORD!r}\n"
        f"with open(os.path.join(os.environ[{SECRET_PATH_ENV!r}], name), encoding='utf-8') as f:\n"
        "    lines = f.read().splitlines()\n"
        "sys.stdout.write(lines[0] if lines else '')\n"
    )


# --- error classification --------------------------------------------------------------------

_AUTH_REJECTED = ("authentication failed for", "invalid username or password",
                  "http basic: access denied", "invalid credentials")
_AUTH_PROMPTED = ("terminal prompts disabled", "could not read username",
                  "could not read password")
_KEY_REJECTED = ("permission denied (publickey", "load key", "invalid format",
                 "no such identity", "bad permissions", "unprotected private key file")
_REPO_NOT_FOUND = (re.compile(r"repository .*not found"),
                   re.compile(r"project you were looking for could not be found"),
                   re.compile(r"does not appear to be a git repository"),
                   re.compile(r"repository not exported"),
                   re.compile(r"no such repository"))
_REVISION_NOT_FOUND = (re.compile(r"remote branch .*not found"),
                       re.compile(r"couldn't find remote ref"),
                       re.compile(r"not our ref"),
                       re.compile(r"did not match any file\(s\) known to git"),
                       re.compile(r"reference is not a tree"),
                       re.compile(r"not a valid object name"),
                       re.compile(r"unknown revision"),
                       re.compile(r"not a commit"))
_UNREACHABLE = ("could not resolve host", "connection refused", "connection timed out",
                "no route to host", "failed to connect", "unable to connect",
                "network is unreachable", "could not resolve hostname",
                "name or service not known", "operation timed out")


_DNS_FAILURES = ("could not resolve host", "could not resolve hostname",
                 "name or service not known", "temporary failure in name resolution")


def _summary(output: str) -> str:
    """What Git said went wrong: its last `fatal:`/`error:` line without the prefix, with the
    lines that continue it (git prints the cause of `unable to connect to host:` on the next
    line: `host[0: 1.2.3.4]: errno=Connection refused`)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        lowered = lines[index].lower()
        if lowered.startswith(("fatal:", "error:")):
            continued = [
                line for line in lines[index + 1 :]
                if not line.lower().startswith(("hint:", "warning:"))
            ]  # fmt: skip
            return " ".join([lines[index].split(":", 1)[1].strip(), *continued])
    return lines[-1] if lines else "no output"


def _unreachable_message(where: str, stderr: str) -> str:
    """Git could not reach the server: its own words, with "no such host" for a name that
    does not resolve (the words upstream reports and users search for), and what to check."""
    summary = _summary(stderr)
    if not any(marker in summary.lower() for marker in _UNREACHABLE):
        # The cause came before git's last word (ssh prints it, then git gives up).
        causes = [
            line.strip() for line in stderr.splitlines()
            if any(marker in line.lower() for marker in _UNREACHABLE)
        ]  # fmt: skip
        summary = causes[0] if causes else summary
    summary = scrub_url(summary)
    if any(marker in stderr.lower() for marker in _DNS_FAILURES):
        return (
            f"cannot reach {where}: no such host ({summary}); check the host name in the"
            " source URL"
        )
    return (
        f"cannot reach {where}: {summary}; check the host and port in the source URL and"
        " that the Git server is running"
    )


def classify_git_error(
    stderr: str, url: str, auth: AuthKind = AuthKind.NONE, revision: str = ""
) -> tuple[str, str]:
    """The API reason and a one-line message for Git's error output while fetching ``url``.

    ``auth`` is the authentication that was in use: the same server answer means "wrong
    password" with credentials and "private repository" without them.
    """
    text = stderr.lower()
    where = scrub_url(url)
    if any(marker in text for marker in _AUTH_REJECTED) or (
        auth is AuthKind.BASIC
        and ("returned error: 403" in text or any(m in text for m in _AUTH_PROMPTED))
    ):
        return (
            Reason.GIT_AUTH_INVALID_USER_OR_PASS,
            f"authentication to {where} failed: check the username and password in the clone "
            "secret (many hosts want an access token as the password)",
        )
    if any(marker in text for marker in _AUTH_PROMPTED) or "returned error: 403" in text:
        return (
            Reason.GIT_REMOTE_REPOSITORY_PRIVATE,
            f"{where} asks for credentials: the repository is private or does not exist; "
            "set a cloneSecret that may read it",
        )
    if "host key verification failed" in text:
        return (
            Reason.GIT_AUTH_INVALID_KEY,
            f"the ssh host key of {where} is not trusted: add it to known_hosts in the clone "
            "secret",
        )
    if any(marker in text for marker in _KEY_REJECTED):
        return (
            Reason.GIT_AUTH_INVALID_KEY,
            f"the ssh key was rejected for {where}: check that the key is valid, in the right "
            "format, and allowed to read the repository",
        )
    if any(pattern.search(text) for pattern in _REPO_NOT_FOUND):
        return (
            Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
            f"the repository {where} does not exist or may not be read",
        )
    if any(pattern.search(text) for pattern in _REVISION_NOT_FOUND):
        return (
            Reason.GIT_REVISION_NOT_FOUND,
            f"the revision {revision or '(default)'} does not exist in {where}: check the "
            "source's revision",
        )
    if any(marker in text for marker in _UNREACHABLE):
        return Reason.GIT_ERROR, _unreachable_message(where, stderr)
    if is_ssh_url(url) and "could not read from remote repository" in text:
        return (
            Reason.GIT_AUTH_INVALID_KEY,
            f"the ssh server refused access to {where}: check the ssh key and the repository",
        )
    return Reason.GIT_ERROR, f"git failed for {where}: {scrub_url(_summary(stderr))}"


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` folded onto one line and cut to ``limit`` characters."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- running git -----------------------------------------------------------------------------


@dataclass
class Git:
    """Runs git with the step's environment and logs every command and its output, scrubbed."""

    env: Mapping[str, str]
    config: Sequence[str] = ()
    secrets: Sequence[str] = ()
    url: str = ""
    log: list[str] = field(default_factory=list)

    def _show(self, text: str) -> str:
        shown = scrub_text(text, self.secrets)
        if self.url:
            shown = shown.replace(self.url, scrub_url(self.url))
        return shown

    def run(self, *args: str, cwd: str | None = None) -> str:
        """Run ``git <config> <args>``; returns stdout, raises :class:`GitFailed`."""
        command = ["git", *self.config, *args]
        print("+ " + self._show(shlex.join(["git", *args])), flush=True)
        completed = subprocess.run(
            command, cwd=cwd, env=dict(self.env), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, check=False,
        )
        errors = self._show(completed.stderr)
        if errors.strip():
            print(errors.rstrip("\n"), file=sys.stderr, flush=True)
        if completed.returncode != 0:
            raise GitFailed(errors + self._show(completed.stdout))
        return completed.stdout


@dataclass(frozen=True)
class CloneRequest:
    url: str
    target: str
    revision: str = ""
    depth: int = 1


def _read_secret_file(secret_path: str, name: str) -> str:
    with open(os.path.join(secret_path, name), encoding="utf-8") as handle:
        return handle.read()


def prepare_auth(
    auth: AuthKind, secret_path: str | None, scratch: str, base_env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Environment for git and the secret values to hide, for the chosen authentication."""
    env = dict(base_env)
    # Git must fail rather than wait for a terminal that will never answer.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_ASKPASS", None)
    env.pop("SSH_ASKPASS", None)
    secrets: list[str] = []
    if auth is AuthKind.BASIC and secret_path:
        helper = os.path.join(scratch, "askpass")
        with open(helper, "w", encoding="utf-8") as handle:
            handle.write(askpass_program(sys.executable))
        os.chmod(helper, 0o700)
        env["GIT_ASKPASS"] = helper
        env[SECRET_PATH_ENV] = secret_path
        secrets += [
            _read_secret_file(secret_path, SECRET_PASSWORD).strip(),
            _read_secret_file(secret_path, SECRET_USERNAME).strip(),
        ]
    elif auth is AuthKind.SSH and secret_path:
        key = _read_secret_file(secret_path, SECRET_SSH_KEY)
        key_file = os.path.join(scratch, "id")
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            # OpenSSH rejects a key whose last line lacks its newline ("invalid format").
            handle.write(key if key.endswith("\n") else key + "\n")
        known_hosts = os.path.join(secret_path, SECRET_KNOWN_HOSTS)
        env["GIT_SSH_COMMAND"] = ssh_command(
            key_file,
            known_hosts if os.path.isfile(known_hosts) else None,
            os.path.join(scratch, "known_hosts"),
        )
    return env, secrets


def _git_config(target: str, url: str, auth: AuthKind, url_rewrite: bool) -> list[str]:
    config = [
        # No credential helper from any gitconfig may store or offer credentials.
        "-c", "credential.helper=",
        # The workspace volume may belong to another uid than the step's.
        "-c", f"safe.directory={os.path.abspath(target)}",
        "-c", "advice.detachedHead=false",
        "-c", "init.defaultBranch=main",
    ]
    if url_rewrite and auth is AuthKind.SSH and url_scheme(url) in ("http", "https"):
        host = urlsplit(url).hostname
        if host:
            config += ["-c", f"url.ssh://git@{host}/.insteadOf=https://{host}/"]
    return config


def _ensure_empty_target(target: str) -> None:
    os.makedirs(target, exist_ok=True)
    if os.listdir(target):
        raise StepError(Reason.GIT_ERROR, f"the target directory {target} is not empty")


def _clear_target(target: str) -> None:
    """Remove what a failed attempt left in the (volume-mounted, so kept) target directory."""
    for name in os.listdir(target):
        path = os.path.join(target, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


_FATAL_FOR_FALLBACK = {
    Reason.GIT_AUTH_INVALID_USER_OR_PASS,
    Reason.GIT_AUTH_INVALID_KEY,
    Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
    Reason.GIT_REMOTE_REPOSITORY_PRIVATE,
}


def _checkout_commit(git: Git, request: CloneRequest, auth: AuthKind) -> None:
    """Fetch one commit by sha, falling back to a full clone when the server will not serve it.

    Servers speaking protocol v2 (and v0 servers that allow it) serve any reachable commit by
    its full sha, which keeps ``--depth`` shallow. An abbreviated sha, or a server that only
    serves advertised refs, needs the whole history to find the commit.
    """
    target, sha = request.target, request.revision.lower()
    if len(sha) == 40:
        try:
            git.run("init", "--quiet", target)
            git.run("-C", target, "remote", "add", "origin", request.url)
            fetch = ["-C", target, "fetch", "--quiet", "--no-tags"]
            if request.depth > 0:
                fetch += ["--depth", str(request.depth)]
            git.run(*fetch, "origin", sha)
            git.run("-C", target, "checkout", "--quiet", "--detach", "FETCH_HEAD")
            return
        except GitFailed as failure:
            reason, _ = classify_git_error(failure.output, request.url, auth, sha)
            if reason in _FATAL_FOR_FALLBACK:
                raise
            print("fetching the commit by its sha failed; cloning the full history instead",
                  flush=True)
            _clear_target(target)
    git.run("clone", "--quiet", "--no-checkout", "--", request.url, target)
    # A hex-looking revision may still be a tag or (rarely) a branch name.
    for candidate in (sha, request.revision, f"origin/{request.revision}"):
        try:
            commit = git.run("-C", target, "rev-parse", "--verify", "--quiet",
                             f"{candidate}^{{commit}}").strip()
        except GitFailed:
            continue
        git.run("-C", target, "checkout", "--quiet", "--detach", commit)
        return
    raise StepError(
        Reason.GIT_REVISION_NOT_FOUND,
        f"the revision {request.revision} does not exist in {scrub_url(request.url)}",
    )


def fetch_source(git: Git, request: CloneRequest, auth: AuthKind) -> None:
    """Put the requested revision of the repository into ``request.target``."""
    _ensure_empty_target(request.target)
    if request.revision and is_commit_sha(request.revision):
        _checkout_commit(git, request, auth)
    else:
        clone = ["clone", "--quiet", "--single-branch"]
        if request.revision:
            clone += ["--branch", request.revision]
        else:
            # Tags of the default branch are not needed; with --branch <tag> they are.
            clone += ["--no-tags"]
        if request.depth > 0:
            clone += ["--depth", str(request.depth)]
        git.run(*clone, "--", request.url, request.target)
    try:
        git.run("-C", request.target, "rev-parse", "--verify", "--quiet", "HEAD")
    except GitFailed:
        raise StepError(
            Reason.GIT_ERROR, f"the repository {scrub_url(request.url)} has no commits"
        ) from None
    if os.path.exists(os.path.join(request.target, ".gitmodules")):
        submodules = ["-C", request.target, "submodule", "update", "--init", "--recursive"]
        if request.depth > 0:
            submodules += ["--depth", str(request.depth)]
        git.run(*submodules)
    if url_without_userinfo(request.url) != request.url:
        # Credentials written into the URL would otherwise stay in .git/config, and builds
        # that copy the whole context would ship them in the image.
        git.run("-C", request.target, "remote", "set-url", "origin",
                url_without_userinfo(request.url))


@dataclass(frozen=True)
class SourceResults:
    commit_sha: str
    commit_author: str
    source_timestamp: str
    branch_name: str | None


def read_source_results(git: Git, target: str, revision: str) -> SourceResults:
    """What the checked-out commit reports; the branch only when the default branch was used."""
    def show(fmt: str) -> str:
        return git.run("-C", target, "log", "-1", f"--format={fmt}", "HEAD").strip()

    branch = None
    if not revision:
        branch = git.run("-C", target, "rev-parse", "--abbrev-ref", "HEAD").strip()
    return SourceResults(
        commit_sha=git.run("-C", target, "rev-parse", "--verify", "HEAD").strip(),
        commit_author=show("%an"),
        source_timestamp=show("%ct"),
        branch_name=branch,
    )


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildwright-step git-source",
        description="Clone a Git repository and write the source results.",
    )
    parser.add_argument("--url", required=True, help="the repository URL")
    parser.add_argument("--target", required=True, help="directory to clone into (may exist empty)")
    parser.add_argument("--revision", default="", help="branch, tag or commit sha (default: "
                        "the remote's default branch)")
    parser.add_argument("--depth", type=int, default=1,
                        help="history depth, 0 for the full history (default 1)")
    parser.add_argument("--secret-path", default=None,
                        help="mounted Secret: username+password or ssh-privatekey[+known_hosts]")
    parser.add_argument("--context-dir", default="", help="accepted for the log; the "
                        "strategy reports a missing context directory")
    parser.add_argument("--git-url-rewrite", action="store_true",
                        help="with an ssh key, fetch https://host/ URLs as ssh://git@host/")
    parser.add_argument("--result-file-commit-sha")
    parser.add_argument("--result-file-commit-author")
    parser.add_argument("--result-file-branch-name")
    parser.add_argument("--result-file-source-timestamp")
    parser.add_argument("--result-file-error-reason")
    parser.add_argument("--result-file-error-message")
    parser.add_argument("--termination-log", default=None,
                        help="on failure, also write the error results here as JSON (the "
                        "container's terminationMessagePath)")
    return parser


def _secret_files(secret_path: str | None) -> list[str] | None:
    if not secret_path:
        return None
    try:
        # Secret volumes hold the keys as symlinks into a hidden timestamped directory.
        return [name for name in os.listdir(secret_path) if not name.startswith(".")]
    except FileNotFoundError:
        message = f"the clone secret is not mounted at {secret_path}"
        raise StepError(Reason.GIT_ERROR, message) from None


def run(args: argparse.Namespace) -> SourceResults:
    """Clone as the arguments say; raises :class:`StepError` or :class:`GitFailed`."""
    if args.depth < 0:
        raise StepError(Reason.GIT_ERROR, f"--depth must be 0 or more, not {args.depth}")
    auth = choose_auth(args.url, _secret_files(args.secret_path), url_rewrite=args.git_url_rewrite)
    request = CloneRequest(args.url, args.target, args.revision.strip(), args.depth)
    scratch = tempfile.mkdtemp(prefix="git-source-")
    try:
        env, secrets = prepare_auth(auth, args.secret_path, scratch, os.environ)
        git = Git(env=env, config=_git_config(args.target, args.url, auth, args.git_url_rewrite),
                  secrets=secrets, url=args.url)
        what = f"revision {request.revision}" if request.revision else "the default branch"
        depth = "full history" if request.depth == 0 else f"depth {request.depth}"
        print(f"Cloning {scrub_url(args.url)} ({what}, {depth}, auth: {auth.value}) "
              f"into {args.target}", flush=True)
        try:
            fetch_source(git, request, auth)
        except GitFailed as failure:
            reason, message = classify_git_error(
                failure.output, args.url, auth, request.revision
            )
            raise StepError(reason, scrub_text(message, secrets)) from None
        results = read_source_results(git, args.target, request.revision)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except StepError as error:
        reason, message = error.reason, error.message
    except (GitFailed, OSError) as error:
        reason, message = Reason.GIT_ERROR, f"the git source step failed: {error}"
    else:
        write_result(args.result_file_commit_sha, results.commit_sha)
        write_result(args.result_file_commit_author, results.commit_author)
        write_result(args.result_file_source_timestamp, results.source_timestamp)
        if results.branch_name is not None:
            write_result(args.result_file_branch_name, results.branch_name)
        where = f" on branch {results.branch_name}" if results.branch_name else ""
        print(f"Checked out commit {results.commit_sha}{where} by {results.commit_author} "
              f"into {args.target}", flush=True)
        if args.context_dir:
            context = os.path.join(args.target, args.context_dir)
            state = "present" if os.path.isdir(context) else "missing"
            print(f"Context directory {args.context_dir}: {state}", flush=True)
        return 0
    message = one_line(scrub_text(message))
    write_result(args.result_file_error_reason, reason)
    write_result(args.result_file_error_message, message)
    if args.termination_log:
        report = render_termination_message(
            {RESULT_ERROR_REASON: reason, RESULT_ERROR_MESSAGE: message}
        )
        try:
            with open(args.termination_log, "w", encoding="utf-8") as log:
                log.write(report)
        except OSError as error:  # the result files still carry the reason
            print(f"warning: cannot write {args.termination_log}: {error}", file=sys.stderr)
    print(f"error: {reason}: {message}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
