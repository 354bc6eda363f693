"""The git-source step: URL and credential rules, error classification, and real clones.

Clones run the step as the Pod would (``python -m buildwright.steps git-source …``) against
repositories served by file://, ``git daemon`` and a smart-HTTP server with basic auth.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildwright.core.reasons import Reason
from buildwright.steps import git_source
from buildwright.steps.git_source import (
    AuthKind,
    StepError,
    askpass_program,
    choose_auth,
    classify_git_error,
    is_commit_sha,
    is_ssh_url,
    one_line,
    prepare_auth,
    scrub_text,
    scrub_url,
    ssh_command,
)
from tests.gitserver import (
    HTTP_PASSWORD,
    HTTP_USERNAME,
    GitDaemon,
    GitHttpServer,
    SampleRepo,
    git,
    git_base,
    git_daemon,
    git_http,
    git_http_auth,
    make_sample_repo,
    sample_repo,
)

__all__ = ["git_base", "git_daemon", "git_http", "git_http_auth", "sample_repo"]  # fixtures

# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ssh"),
    [
        ("git@github.com:org/repo.git", True),
        ("ssh://git@example.com:2222/org/repo", True),
        ("git+ssh://example.com/repo", True),
        ("example.com:org/repo.git", True),
        ("https://github.com/org/repo", False),
        ("http://127.0.0.1:8080/repo", False),
        ("git://127.0.0.1:9418/repo", False),
        ("file:///tmp/repo", False),
        ("/tmp/repo", False),
        ("https://user:pw@host/repo", False),
    ],
)
def test_is_ssh_url(url: str, ssh: bool) -> None:
    assert is_ssh_url(url) is ssh


def test_scrub_url_hides_all_user_information() -> None:
    assert scrub_url("https://user:tok3n@host/org/repo") == "https://***@host/org/repo"
    assert scrub_url("https://tok3n@host/x") == "https://***@host/x"
    assert scrub_url("https://host/x") == "https://host/x"
    assert scrub_url("git@github.com:org/repo") == "git@github.com:org/repo"


def test_scrub_text_hides_urls_and_secret_values() -> None:
    text = "fatal: unable to access 'https://u:hunter22@h/r/': hunter22 rejected"
    scrubbed = scrub_text(text, ["hunter22"])
    assert "hunter22" not in scrubbed
    assert "'https://***@h/r/'" in scrubbed
    # Values too short to be a real secret are not used for replacing.
    assert scrub_text("a b c", ["a"]) == "a b c"


@pytest.mark.parametrize(
    ("revision", "sha"),
    [("a1b2c3d", True), ("A1B2C3D4E5", True), ("0" * 40, True), ("a1b2c3", False),
     ("main", False), ("v1.0.0", False), ("0" * 41, False), ("deadbeefx", False)],
)
def test_is_commit_sha(revision: str, sha: bool) -> None:
    assert is_commit_sha(revision) is sha


# --- credentials -----------------------------------------------------------------------------

BASIC = ("username", "password")
SSH_KEY = ("ssh-privatekey",)


@pytest.mark.parametrize(
    ("url", "files", "rewrite", "expected"),
    [
        ("https://h/r", None, False, AuthKind.NONE),
        ("git://h/r", None, False, AuthKind.NONE),
        ("https://h/r", BASIC, False, AuthKind.BASIC),
        ("http://127.0.0.1:8080/r", BASIC, False, AuthKind.BASIC),
        ("http://localhost/r", BASIC, False, AuthKind.BASIC),
        ("http://[::1]:80/r", BASIC, False, AuthKind.BASIC),
        ("git@h:o/r.git", SSH_KEY, False, AuthKind.SSH),
        ("ssh://git@h/o/r", (*SSH_KEY, "known_hosts"), False, AuthKind.SSH),
        ("https://h/o/r", SSH_KEY, True, AuthKind.SSH),
    ],
)
def test_choose_auth_accepts(
    url: str, files: tuple[str, ...] | None, rewrite: bool, expected: AuthKind
) -> None:
    assert choose_auth(url, files, url_rewrite=rewrite) is expected


@pytest.mark.parametrize(
    ("url", "files", "reason"),
    [
        ("https://h/r", ("username",), Reason.GIT_BASIC_AUTH_INCOMPLETE),
        ("https://h/r", ("password",), Reason.GIT_BASIC_AUTH_INCOMPLETE),
        ("https://h/r", SSH_KEY, Reason.GIT_SSH_AUTH_UNEXPECTED),
        ("file:///tmp/r", SSH_KEY, Reason.GIT_SSH_AUTH_UNEXPECTED),
        ("git@h:o/r.git", BASIC, Reason.GIT_SSH_AUTH_EXPECTED),
        ("git@h:o/r.git", None, Reason.GIT_SSH_AUTH_EXPECTED),
        ("ssh://h/o/r", (), Reason.GIT_SSH_AUTH_EXPECTED),
        ("http://git.example.test/r", BASIC, Reason.AUTH_UNEXPECTED_HTTP),
        ("http://10.0.0.1/r", BASIC, Reason.AUTH_UNEXPECTED_HTTP),
        ("git://h/r", BASIC, Reason.GIT_ERROR),
        ("https://h/r", (), Reason.GIT_ERROR),
        ("https://h/r", ("token",), Reason.GIT_ERROR),
    ],
)
def test_choose_auth_refuses(url: str, files: tuple[str, ...] | None, reason: str) -> None:
    with pytest.raises(StepError) as refused:
        choose_auth(url, files)
    assert refused.value.reason == reason
    assert refused.value.message


def test_refusal_message_does_not_leak_url_credentials() -> None:
    with pytest.raises(StepError) as refused:
        choose_auth("http://me:topsecret@git.example.test/r", BASIC)
    assert "topsecret" not in refused.value.message


def test_ssh_command_with_known_hosts_checks_strictly() -> None:
    command = shlex.split(ssh_command("/tmp/s p/id", "/secret/known_hosts", "/tmp/kh"))
    assert command[:3] == ["ssh", "-i", "/tmp/s p/id"]
    assert "StrictHostKeyChecking=yes" in command
    assert "UserKnownHostsFile=/secret/known_hosts" in command
    assert "BatchMode=yes" in command


def test_ssh_command_without_known_hosts_accepts_new_hosts_into_scratch_file() -> None:
    command = shlex.split(ssh_command("/tmp/id", None, "/tmp/scratch/known_hosts"))
    assert "StrictHostKeyChecking=accept-new" in command
    assert "UserKnownHostsFile=/tmp/scratch/known_hosts" in command


def _secret_dir(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, value in files.items():
        (path / name).write_text(value)
        (path / name).chmod(0o444)  # as a Secret volume mounts them
    return path


def test_ssh_key_is_copied_private_and_newline_terminated(tmp_path: Path) -> None:
    secret = _secret_dir(tmp_path / "secret", {"ssh-privatekey": "KEY-MATERIAL",
                                               "known_hosts": "h ssh-ed25519 AAAA\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env, _ = prepare_auth(AuthKind.SSH, str(secret), str(scratch), {"PATH": "/bin"})
    command = shlex.split(env["GIT_SSH_COMMAND"])
    key = Path(command[command.index("-i") + 1])
    assert key.parent == scratch
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text() == "KEY-MATERIAL\n"
    assert f"UserKnownHostsFile={secret / 'known_hosts'}" in command
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "GIT_ASKPASS" not in env


def test_askpass_helper_answers_from_the_secret_files(tmp_path: Path) -> None:
    secret = _secret_dir(tmp_path / "secret", {"username": "robot\n", "password": "p@ss w0rd"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env, secrets = prepare_auth(AuthKind.BASIC, str(secret), str(scratch), dict(os.environ))
    helper = env["GIT_ASKPASS"]
    assert "p@ss w0rd" not in Path(helper).read_text()  # reads the file, holds no value

    def ask(prompt: str) -> str:
        return subprocess.run([helper, prompt], env=env, capture_output=True, text=True,
                              check=True).stdout

    assert ask("Username for 'https://h': ") == "robot"
    assert ask("Password for 'https://robot@h': ") == "p@ss w0rd"
    assert "p@ss w0rd" in secrets


def test_askpass_program_never_embeds_the_interpreter_with_spaces() -> None:
    assert askpass_program("/opt/my python/bin/python").startswith("#!/usr/bin/env python3\n")
    assert askpass_program("/usr/bin/python3").startswith("#!/usr/bin/python3\n")


# --- error classification (stderr as git 2.39 prints it) -------------------------------------

URL = "https://git.example.test/org/repo.git"

CLASSIFICATION_CASES = [
    pytest.param(
        "fatal: '/tmp/gx/nope' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n",
        "file:///tmp/gx/nope", AuthKind.NONE, Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
        id="file-missing"),
    pytest.param(
        "fatal: remote error: access denied or repository not exported: /zzz\n",
        "git://127.0.0.1:9418/zzz", AuthKind.NONE, Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
        id="daemon-not-exported"),
    pytest.param(
        "fatal: repository 'http://127.0.0.1:33819/nope/' not found\n",
        "http://127.0.0.1:33819/nope", AuthKind.NONE, Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
        id="http-404"),
    pytest.param(
        "remote: The project you were looking for could not be found or you don't have "
        "permission to view it.\nfatal: repository 'https://gitlab.com/o/r.git/' not found\n",
        URL, AuthKind.BASIC, Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND, id="gitlab-404"),
    pytest.param(
        "ERROR: Repository not found.\nfatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n",
        "git@github.com:o/r.git", AuthKind.SSH, Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
        id="github-ssh-404"),
    pytest.param(
        "warning: Could not find remote branch nob to clone.\n"
        "fatal: Remote branch nob not found in upstream origin\n",
        URL, AuthKind.NONE, Reason.GIT_REVISION_NOT_FOUND, id="branch-missing"),
    pytest.param(
        "fatal: remote error: upload-pack: not our ref "
        "0123456789abcdef0123456789abcdef01234567\n",
        URL, AuthKind.NONE, Reason.GIT_REVISION_NOT_FOUND, id="sha-missing"),
    pytest.param(
        "fatal: couldn't find remote ref refs/heads/nope\n",
        URL, AuthKind.NONE, Reason.GIT_REVISION_NOT_FOUND, id="ref-missing"),
    pytest.param(
        "error: pathspec 'deadbeef' did not match any file(s) known to git\n",
        URL, AuthKind.NONE, Reason.GIT_REVISION_NOT_FOUND, id="checkout-missing"),
    pytest.param(
        "fatal: Authentication failed for 'http://127.0.0.1:43319/sample/'\n",
        "http://127.0.0.1:43319/sample", AuthKind.BASIC, Reason.GIT_AUTH_INVALID_USER_OR_PASS,
        id="http-401-wrong-password"),
    pytest.param(
        "remote: Invalid username or password.\n"
        "fatal: Authentication failed for 'https://github.com/o/r.git/'\n",
        URL, AuthKind.BASIC, Reason.GIT_AUTH_INVALID_USER_OR_PASS, id="github-wrong-token"),
    pytest.param(
        "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'x'\n",
        URL, AuthKind.BASIC, Reason.GIT_AUTH_INVALID_USER_OR_PASS, id="gitlab-wrong-token"),
    pytest.param(
        "fatal: unable to access 'https://h/r/': The requested URL returned error: 403\n",
        URL, AuthKind.BASIC, Reason.GIT_AUTH_INVALID_USER_OR_PASS, id="403-with-credentials"),
    pytest.param(
        "fatal: could not read Username for 'http://127.0.0.1:43319': terminal prompts "
        "disabled\n",
        "http://127.0.0.1:43319/sample", AuthKind.NONE, Reason.GIT_REMOTE_REPOSITORY_PRIVATE,
        id="http-401-no-credentials"),
    pytest.param(
        "fatal: unable to access 'https://h/r/': The requested URL returned error: 403\n",
        URL, AuthKind.NONE, Reason.GIT_REMOTE_REPOSITORY_PRIVATE, id="403-anonymous"),
    pytest.param(
        "git@github.com: Permission denied (publickey).\n"
        "fatal: Could not read from remote repository.\n",
        "git@github.com:o/r.git", AuthKind.SSH, Reason.GIT_AUTH_INVALID_KEY, id="ssh-key-rejected"),
    pytest.param(
        'Load key "/tmp/git-source-x/id": invalid format\n'
        "git@github.com: Permission denied (publickey).\n"
        "fatal: Could not read from remote repository.\n",
        "git@github.com:o/r.git", AuthKind.SSH, Reason.GIT_AUTH_INVALID_KEY, id="ssh-key-garbage"),
    pytest.param(
        "Host key verification failed.\nfatal: Could not read from remote repository.\n",
        "git@github.com:o/r.git", AuthKind.SSH, Reason.GIT_AUTH_INVALID_KEY, id="ssh-host-key"),
    pytest.param(
        "fatal: Could not read from remote repository.\n",
        "ssh://git@h/o/r", AuthKind.SSH, Reason.GIT_AUTH_INVALID_KEY, id="ssh-refused-quietly"),
    pytest.param(
        "ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
        "fatal: Could not read from remote repository.\n",
        "ssh://git@127.0.0.1:1/zzz", AuthKind.SSH, Reason.GIT_ERROR, id="ssh-unreachable"),
    pytest.param(
        "fatal: unable to access 'https://nonexistent.invalid/zzz/': Could not resolve host: "
        "nonexistent.invalid\n",
        "https://nonexistent.invalid/zzz", AuthKind.NONE, Reason.GIT_ERROR, id="dns"),
    pytest.param(
        "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection "
        "refused\n",
        "git://127.0.0.1:1/zzz", AuthKind.NONE, Reason.GIT_ERROR, id="daemon-down"),
    pytest.param(
        "fatal: destination path 't11' already exists and is not an empty directory.\n",
        URL, AuthKind.NONE, Reason.GIT_ERROR, id="unknown"),
]


@pytest.mark.parametrize(("stderr", "url", "auth", "reason"), CLASSIFICATION_CASES)
def test_classify_git_error(stderr: str, url: str, auth: AuthKind, reason: str) -> None:
    got_reason, message = classify_git_error(stderr, url, auth)
    assert got_reason == reason
    assert message and "\n" not in message


def test_unknown_errors_keep_gits_own_words() -> None:
    _, message = classify_git_error(
        "warning: x\nfatal: destination path 't11' already exists and is not an empty "
        "directory.\n", URL)
    assert "already exists and is not an empty directory" in message


def test_classification_messages_hide_url_credentials() -> None:
    url = "https://robot:tok3n-value@h/r"
    for stderr in ("fatal: Authentication failed for 'https://robot:tok3n-value@h/r/'",
                   "fatal: something odd about https://robot:tok3n-value@h/r"):
        _, message = classify_git_error(stderr, url, AuthKind.BASIC)
        assert "tok3n-value" not in message


def test_revision_not_found_names_the_revision() -> None:
    _, message = classify_git_error("fatal: Remote branch nob not found in upstream origin",
                                    URL, revision="nob")
    assert "nob" in message


def test_one_line_folds_and_cuts() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    cut = one_line("x" * 500, limit=50)
    assert len(cut) == 50 and cut.endswith("...")


# --- real clones -----------------------------------------------------------------------------

RESULT_NAMES = ("commit-sha", "commit-author", "branch-name", "source-timestamp",
                "error-reason", "error-message")


@dataclass
class StepRun:
    code: int
    output: str
    results: dict[str, str]
    target: Path


def run_step(tmp_path: Path, url: str, *extra: str, target: Path | None = None,
             env: dict[str, str] | None = None) -> StepRun:
    """Run the step in a subprocess like the Pod does; results maps short names to values."""
    results_dir = tmp_path / "results"
    results_dir.mkdir(exist_ok=True)
    for old in results_dir.iterdir():
        old.unlink()
    target = target or tmp_path / "source"
    args = [sys.executable, "-m", "buildwright.steps", "git-source", "--url", url,
            "--target", str(target), *extra]
    for name in RESULT_NAMES:
        args += [f"--result-file-{name}", str(results_dir / name)]
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
    )
    results = {path.name: path.read_text() for path in results_dir.iterdir()}
    return StepRun(completed.returncode, completed.stdout + completed.stderr, results, target)


def commit_count(target: Path) -> int:
    return int(git("rev-list", "--count", "HEAD", cwd=target))


@pytest.fixture(params=["file", "daemon", "http"])
def served_url(
    request: pytest.FixtureRequest, sample_repo: SampleRepo, git_base: Path
) -> str:
    """The sample repository's URL over each transport."""
    if request.param == "file":
        return f"file://{sample_repo.path}"
    server: GitDaemon | GitHttpServer = (
        GitDaemon(git_base) if request.param == "daemon" else GitHttpServer(git_base)
    )
    server.start()
    request.addfinalizer(server.stop)
    return server.url(sample_repo.name)


def test_clones_default_branch_shallow(
    tmp_path: Path, served_url: str, sample_repo: SampleRepo
) -> None:
    run = run_step(tmp_path, served_url)
    assert run.code == 0, run.output
    assert run.results == {
        "commit-sha": sample_repo.commits["third"],
        "commit-author": "Carol Coder",
        "source-timestamp": str(sample_repo.timestamps["third"]),
        "branch-name": "main",
    }
    assert (run.target / "app.txt").read_text() == "three\n"
    assert commit_count(run.target) == 1


def test_clones_branch(tmp_path: Path, served_url: str, sample_repo: SampleRepo) -> None:
    run = run_step(tmp_path, served_url, "--revision", "feature")
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["feature"]
    assert run.results["commit-author"] == "Dan Dev"
    assert "branch-name" not in run.results  # only reported for the default branch
    assert (run.target / "feature.txt").exists()


def test_clones_tag(tmp_path: Path, served_url: str, sample_repo: SampleRepo) -> None:
    run = run_step(tmp_path, served_url, "--revision", "v1")
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["first"]
    assert not (run.target / "app.txt").exists()


def test_clones_full_sha_of_an_inner_commit_shallow(
    tmp_path: Path, served_url: str, sample_repo: SampleRepo
) -> None:
    run = run_step(tmp_path, served_url, "--revision", sample_repo.commits["second"])
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["second"]
    assert run.results["commit-author"] == "Bob Builder"
    assert commit_count(run.target) == 1
    assert (run.target / "docs" / "README.md").exists()


def test_clones_abbreviated_sha(tmp_path: Path, served_url: str, sample_repo: SampleRepo) -> None:
    run = run_step(tmp_path, served_url, "--revision", sample_repo.commits["second"][:8])
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["second"]


def test_sha_falls_back_to_full_clone_when_server_serves_only_advertised_refs(
    tmp_path: Path, sample_repo: SampleRepo, git_daemon: GitDaemon
) -> None:
    # Protocol v0 upload-pack refuses wants of unadvertised objects by default.
    v0 = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version",
          "GIT_CONFIG_VALUE_0": "0"}
    run = run_step(tmp_path, git_daemon.url(sample_repo.name), "--revision",
                   sample_repo.commits["second"], env=v0)
    assert run.code == 0, run.output
    assert "cloning the full history" in run.output
    assert run.results["commit-sha"] == sample_repo.commits["second"]


@pytest.mark.parametrize(("depth", "commits"), [("0", 3), ("2", 2), ("1", 1)])
def test_depth(tmp_path: Path, sample_repo: SampleRepo, git_daemon: GitDaemon, depth: str,
               commits: int) -> None:
    run = run_step(tmp_path, git_daemon.url(sample_repo.name), "--depth", depth)
    assert run.code == 0, run.output
    assert commit_count(run.target) == commits


def test_reports_the_remote_default_branch_name(tmp_path: Path, git_base: Path) -> None:
    repo = make_sample_repo(git_base, "trunky", default_branch="trunk")
    run = run_step(tmp_path, f"file://{repo.path}")
    assert run.code == 0, run.output
    assert run.results["branch-name"] == "trunk"


def test_clones_into_an_existing_empty_directory_owned_by_someone_else(
    tmp_path: Path, sample_repo: SampleRepo
) -> None:
    target = tmp_path / "volume"
    target.mkdir()
    if os.geteuid() == 0:
        # An emptyDir belongs to root while the step runs as uid 1000; git's ownership check
        # must not refuse the clone.
        os.chown(target, 65534, 65534)
    run = run_step(tmp_path, f"file://{sample_repo.path}", target=target)
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["third"]


def test_refuses_a_non_empty_target(tmp_path: Path, sample_repo: SampleRepo) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "leftover").write_text("x")
    run = run_step(tmp_path, f"file://{sample_repo.path}", target=target)
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_ERROR
    assert "not empty" in run.results["error-message"]


def test_missing_context_dir_is_not_this_steps_error(
    tmp_path: Path, sample_repo: SampleRepo
) -> None:
    run = run_step(tmp_path, f"file://{sample_repo.path}", "--context-dir", "no/such/dir")
    assert run.code == 0, run.output
    assert "error-reason" not in run.results


@pytest.mark.parametrize("transport", ["file", "daemon", "http"])
def test_missing_repository(tmp_path: Path, git_base: Path, transport: str) -> None:
    if transport == "file":
        run = run_step(tmp_path, f"file://{git_base}/absent")
    else:
        server: GitDaemon | GitHttpServer = (
            GitDaemon(git_base) if transport == "daemon" else GitHttpServer(git_base)
        )
        with server:
            run = run_step(tmp_path, server.url("absent"))
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND
    assert "absent" in run.results["error-message"]
    assert set(run.results) == {"error-reason", "error-message"}


def test_repository_not_exported_by_daemon(tmp_path: Path, sample_repo: SampleRepo,
                                           git_base: Path) -> None:
    with GitDaemon(git_base, export_all=False) as daemon:
        run = run_step(tmp_path, daemon.url(sample_repo.name))
    assert run.results["error-reason"] == Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND


@pytest.mark.parametrize("revision", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567",
                                      "abcdef1"])
def test_missing_revision(tmp_path: Path, served_url: str, revision: str) -> None:
    run = run_step(tmp_path, served_url, "--revision", revision)
    assert run.code == 1, run.output
    assert run.results["error-reason"] == Reason.GIT_REVISION_NOT_FOUND
    assert revision in run.results["error-message"]


def test_unreachable_server_is_a_git_error(tmp_path: Path) -> None:
    from tests.gitserver import free_port

    run = run_step(tmp_path, f"git://127.0.0.1:{free_port()}/repo")
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_ERROR
    assert "cannot reach" in run.results["error-message"]


# --- credentials, for real -------------------------------------------------------------------


def _everything_written(run: StepRun) -> str:
    """The step's output, its result files and every file of the clone's .git directory."""
    parts = [run.output, *run.results.values()]
    git_dir = run.target / ".git"
    if git_dir.exists():
        for path in git_dir.rglob("*"):
            if path.is_file():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_basic_auth_clones_without_leaking_the_password(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    secret = _secret_dir(tmp_path / "secret", {"username": HTTP_USERNAME,
                                               "password": HTTP_PASSWORD})
    run = run_step(tmp_path, git_http_auth.url(sample_repo.name), "--secret-path", str(secret))
    assert run.code == 0, run.output
    assert run.results["commit-sha"] == sample_repo.commits["third"]
    assert ("GET", f"/{sample_repo.name}/info/refs", HTTP_USERNAME) in \
        git_http_auth.requests_seen
    assert HTTP_PASSWORD not in _everything_written(run)
    config = (run.target / ".git" / "config").read_text()
    assert "@" not in config and "credential" not in config


def test_wrong_password_is_reported_without_leaking_it(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    wrong = "not-the-right-password-42"
    secret = _secret_dir(tmp_path / "secret", {"username": HTTP_USERNAME, "password": wrong})
    run = run_step(tmp_path, git_http_auth.url(sample_repo.name), "--secret-path", str(secret))
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_AUTH_INVALID_USER_OR_PASS
    assert wrong not in _everything_written(run)
    assert all(user == "refused" for _, _, user in git_http_auth.requests_seen)


def test_private_repository_without_credentials(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    run = run_step(tmp_path, git_http_auth.url(sample_repo.name))
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_REMOTE_REPOSITORY_PRIVATE


def test_incomplete_basic_auth_fails_before_contacting_the_server(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    secret = _secret_dir(tmp_path / "secret", {"username": HTTP_USERNAME})
    run = run_step(tmp_path, git_http_auth.url(sample_repo.name), "--secret-path", str(secret))
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_BASIC_AUTH_INCOMPLETE
    assert git_http_auth.requests_seen == []


def test_credentials_in_the_url_are_scrubbed_from_output_and_config(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    url = git_http_auth.url(sample_repo.name).replace(
        "http://", f"http://{HTTP_USERNAME}:{HTTP_PASSWORD}@")
    run = run_step(tmp_path, url)
    assert run.code == 0, run.output
    assert HTTP_PASSWORD not in _everything_written(run)
    remote = git("remote", "get-url", "origin", cwd=run.target)
    assert remote == git_http_auth.url(sample_repo.name)


def test_wrong_password_in_the_url_is_scrubbed_from_the_error(
    tmp_path: Path, sample_repo: SampleRepo, git_http_auth: GitHttpServer
) -> None:
    url = git_http_auth.url(sample_repo.name).replace("http://", "http://me:wr0ng-pa55@")
    run = run_step(tmp_path, url)
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_AUTH_INVALID_USER_OR_PASS
    assert "wr0ng-pa55" not in _everything_written(run)


@pytest.mark.parametrize(
    ("url", "files", "reason"),
    [
        ("http://127.0.0.1:1/r", {"ssh-privatekey": "KEY"}, Reason.GIT_SSH_AUTH_UNEXPECTED),
        ("ssh://git@127.0.0.1:1/r", {"username": "u", "password": "p"},
         Reason.GIT_SSH_AUTH_EXPECTED),
        ("http://git.example.test/r", {"username": "u", "password": "p"},
         Reason.AUTH_UNEXPECTED_HTTP),
    ],
)
def test_credential_url_mismatch_is_reported(
    tmp_path: Path, url: str, files: dict[str, str], reason: str
) -> None:
    secret = _secret_dir(tmp_path / "secret", files)
    run = run_step(tmp_path, url, "--secret-path", str(secret))
    assert run.code == 1
    assert run.results["error-reason"] == reason


def test_ssh_clone_uses_the_key_and_reports_an_unreachable_host(tmp_path: Path) -> None:
    from tests.gitserver import free_port

    secret = _secret_dir(tmp_path / "secret", {"ssh-privatekey": "not a key"})
    run = run_step(tmp_path, f"ssh://git@127.0.0.1:{free_port()}/repo", "--secret-path",
                   str(secret))
    assert run.code == 1
    assert run.results["error-reason"] == Reason.GIT_ERROR
    assert "cannot reach" in run.results["error-message"]
    assert not list(tmp_path.glob("git-source-*"))  # the key copy is gone


# --- the dispatcher --------------------------------------------------------------------------


def test_dispatcher_usage() -> None:
    def step(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "buildwright.steps", *args],
                              capture_output=True, text=True, check=False)

    assert step().returncode == 2
    help_run = step("--help")
    assert help_run.returncode == 0 and "git-source" in help_run.stdout
    unknown = step("frobnicate")
    assert unknown.returncode == 2 and "frobnicate" in unknown.stderr
    assert step("git-source", "--help").returncode == 0


def test_main_in_process_writes_error_results(tmp_path: Path) -> None:
    reason_file = tmp_path / "reason"
    message_file = tmp_path / "message"
    code = git_source.main([
        "--url", "git@github.com:o/r.git", "--target", str(tmp_path / "t"),
        "--result-file-error-reason", str(reason_file),
        "--result-file-error-message", str(message_file),
    ])
    assert code == 1
    assert reason_file.read_text() == Reason.GIT_SSH_AUTH_EXPECTED
    assert "ssh" in message_file.read_text()


def test_failure_is_reported_in_the_termination_log(tmp_path: Path, git_base: Path) -> None:
    """An init container's failure stops the Pod before step-results runs, so the step
    itself must carry its error results out through its termination message."""
    from buildwright.core.contract import parse_termination_message

    log = tmp_path / "termination-log"
    run = run_step(tmp_path, f"file://{git_base}/absent", "--termination-log", str(log))
    assert run.code == 1
    reported = parse_termination_message(log.read_text())
    assert reported == {
        "shp-error-reason": Reason.GIT_REMOTE_REPOSITORY_NOT_FOUND,
        "shp-error-message": run.results["error-message"],
    }


def test_success_leaves_the_termination_log_alone(tmp_path: Path, sample_repo: SampleRepo) -> None:
    log = tmp_path / "termination-log"
    run = run_step(tmp_path, f"file://{sample_repo.path}", "--termination-log", str(log))
    assert run.code == 0, run.output
    assert not log.exists()


def test_a_refused_connection_keeps_gits_errno_line() -> None:
    _, message = classify_git_error(
        "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection "
        "refused\n", "git://127.0.0.1:1/zzz")
    assert "errno=Connection refused" in message
    assert "check the host and port" in message


def test_an_unknown_host_says_no_such_host_in_gits_words_too() -> None:
    _, message = classify_git_error(
        "fatal: unable to access 'https://nonexistent.invalid/zzz/': Could not resolve host: "
        "nonexistent.invalid\n", "https://nonexistent.invalid/zzz")
    assert "no such host" in message
    assert "Could not resolve host: nonexistent.invalid" in message


def test_an_ssh_connection_refused_is_the_cause_not_gits_last_word() -> None:
    _, message = classify_git_error(
        "ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
        "fatal: Could not read from remote repository.\n", "ssh://git@127.0.0.1:1/zzz")
    assert "Connection refused" in message
