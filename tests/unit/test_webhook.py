"""The conversion webhook: ConversionReview handling, and the app over real HTTPS on loopback."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from buildwright.api.conversion import V1ALPHA1, V1BETA1
from buildwright.webhook.certificates import certificate_not_after, generate_self_signed
from buildwright.webhook.config import ca_bundle_patch
from buildwright.webhook.review import handle_review
from buildwright.webhook.server import reload_certificate, serve

BOOK_BUILD: dict[str, Any] = {
    "apiVersion": V1ALPHA1,
    "kind": "Build",
    "metadata": {"name": "kaniko-nodejs-build", "namespace": "default", "uid": "u-1"},
    "spec": {
        "source": {
            "url": "https://github.com/shipwright-io/sample-nodejs",
            "contextDir": "docker-build",
        },
        "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
        "output": {
            "image": "quay.io/gitops-cookbook/sample-nodejs:latest",
            "credentials": {"name": "push-secret"},
        },
    },
}


def review(objects: Any, desired: Any = V1BETA1, uid: Any = "req-1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    }


def failure(answer: dict[str, Any]) -> str:
    assert answer["apiVersion"] == "apiextensions.k8s.io/v1"
    assert answer["kind"] == "ConversionReview"
    result = answer["response"]["result"]
    assert result["status"] == "Failure"
    assert answer["response"]["convertedObjects"] == []
    message: str = result["message"]
    return message


# --------------------------------------------------------------------------- handle_review


def test_successful_review_converts_every_object_in_order() -> None:
    run = {
        "apiVersion": V1ALPHA1,
        "kind": "BuildRun",
        "metadata": {"name": "r"},
        "spec": {"buildRef": {"name": "kaniko-nodejs-build"}},
    }
    answer = handle_review(review([BOOK_BUILD, run]))
    response = answer["response"]
    assert response["uid"] == "req-1"
    assert response["result"] == {"status": "Success"}
    build, converted_run = response["convertedObjects"]
    assert build["apiVersion"] == V1BETA1
    assert build["metadata"] == BOOK_BUILD["metadata"]
    assert build["spec"]["source"]["git"]["url"] == "https://github.com/shipwright-io/sample-nodejs"
    assert build["spec"]["output"]["pushSecret"] == "push-secret"
    assert converted_run["spec"] == {"build": {"name": "kaniko-nodejs-build"}}


def test_same_version_returns_the_object_unchanged() -> None:
    answer = handle_review(review([BOOK_BUILD], desired=V1ALPHA1))
    assert answer["response"]["convertedObjects"] == [BOOK_BUILD]


def test_empty_object_list_succeeds() -> None:
    answer = handle_review(review([]))
    assert answer["response"]["result"]["status"] == "Success"
    assert answer["response"]["convertedObjects"] == []


@pytest.mark.parametrize(
    ("body", "uid", "expected"),
    [
        ("not a dict", "", "the body is not a JSON object"),
        (
            {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"},
            "",
            "missing request",
        ),
        (review([BOOK_BUILD], uid=None), "", "missing request.uid"),
        (review([BOOK_BUILD], uid=""), "", "missing request.uid"),
        (review(None), "req-1", "request.objects must be a list"),
        (review([BOOK_BUILD], desired=None), "req-1", "missing request.desiredAPIVersion"),
        (
            {**review([BOOK_BUILD]), "apiVersion": "apiextensions.k8s.io/v1beta1"},
            "req-1",
            "unsupported ConversionReview apiVersion",
        ),
        (
            {**review([BOOK_BUILD]), "kind": "AdmissionReview"},
            "req-1",
            "expected kind ConversionReview",
        ),
    ],
)
def test_malformed_reviews_fail_with_a_clear_message(body: Any, uid: str, expected: str) -> None:
    answer = handle_review(body)
    assert expected in failure(answer)
    assert answer["response"]["uid"] == uid


def test_unknown_desired_version_fails() -> None:
    message = failure(handle_review(review([BOOK_BUILD], desired="shipwright.io/v2")))
    assert "unsupported desiredAPIVersion 'shipwright.io/v2'" in message
    assert "kaniko-nodejs-build" in message


def test_unknown_kind_fails_with_unsupported_kind() -> None:
    pipeline = {"apiVersion": V1ALPHA1, "kind": "Pipeline", "metadata": {"name": "p"}}
    message = failure(handle_review(review([BOOK_BUILD, pipeline])))
    assert message == "object 1 (Pipeline p): unsupported Kind"


@pytest.mark.parametrize(
    "bad_object",
    [
        "a string",
        {**BOOK_BUILD, "spec": ["not", "an", "object"]},
        {**BOOK_BUILD, "apiVersion": "shipwright.io/v0"},
        {**BOOK_BUILD, "metadata": {"name": "x", "annotations": "oops"}},
    ],
)
def test_an_object_that_cannot_convert_fails_the_review(bad_object: Any) -> None:
    assert failure(handle_review(review([bad_object])))


# --------------------------------------------------------------------------- certificates


def test_generated_certificate_is_signed_by_the_ca_and_names_every_host() -> None:
    ca_pem, cert_pem, key_pem = generate_self_signed(
        ["buildwright-webhook.buildwright.svc"], ["127.0.0.1", "::1"], days=30
    )
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["buildwright-webhook.buildwright.svc"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    remaining = certificate_not_after(cert_pem) - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < remaining <= datetime.timedelta(days=30)
    assert b"PRIVATE KEY" in key_pem


def test_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one hostname or IP"):
        generate_self_signed([], [])


def test_ca_bundle_patch_with_a_url() -> None:
    patch = ca_bundle_patch(b"PEM", url="https://127.0.0.1:30443/convert")
    assert patch == {
        "spec": {
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {
                        "caBundle": base64.b64encode(b"PEM").decode(),
                        "url": "https://127.0.0.1:30443/convert",
                        "service": None,
                    },
                    "conversionReviewVersions": ["v1"],
                },
            }
        }
    }


def test_ca_bundle_patch_with_a_service() -> None:
    patch = ca_bundle_patch(b"PEM", service=("buildwright", "buildwright-webhook", 443))
    config = patch["spec"]["conversion"]["webhook"]["clientConfig"]
    assert config["service"] == {
        "namespace": "buildwright",
        "name": "buildwright-webhook",
        "port": 443,
        "path": "/convert",
    }
    assert config["url"] is None
    assert base64.b64decode(config["caBundle"]) == b"PEM"


def test_ca_bundle_patch_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ca_bundle_patch(b"PEM")
    with pytest.raises(ValueError, match="exactly one"):
        ca_bundle_patch(b"PEM", url="https://x/convert", service=("a", "b", 1))


# --------------------------------------------------------------------------- over HTTPS


def write_pair(tmp_path: Path, name: str, cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    return str(cert_file), str(key_file)


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext, Any, Path]]:
    ca_pem, cert_pem, key_pem = generate_self_signed(["localhost"], ["127.0.0.1"], days=1)
    cert_file, key_file = write_pair(tmp_path, "tls", cert_pem, key_pem)
    runner = await serve("127.0.0.1", 0, cert_file, key_file)
    host, port = runner.addresses[0][:2]
    client_ssl = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        yield f"https://{host}:{port}", client_ssl, runner, tmp_path
    finally:
        await runner.cleanup()


async def test_convert_over_https(https_server: tuple[str, ssl.SSLContext, Any, Path]) -> None:
    base, client_ssl, _, _ = https_server
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/convert", json=review([BOOK_BUILD]), ssl=client_ssl
        ) as response:
            assert response.status == 200
            answer = await response.json()
        async with session.get(f"{base}/health", ssl=client_ssl) as response:
            assert response.status == 200
            assert await response.text() == "ok"
    assert answer["response"]["uid"] == "req-1"
    assert answer["response"]["result"] == {"status": "Success"}
    [converted] = answer["response"]["convertedObjects"]
    assert converted["spec"]["source"] == {
        "type": "Git",
        "git": {"url": "https://github.com/shipwright-io/sample-nodejs"},
        "contextDir": "docker-build",
    }


async def test_body_that_is_not_json_gets_400_with_a_review_failure(
    https_server: tuple[str, ssl.SSLContext, Any, Path],
) -> None:
    base, client_ssl, _, _ = https_server
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/convert", data=b"{nope", ssl=client_ssl) as response,
    ):
        assert response.status == 400
        answer = await response.json()
    assert "body is not JSON" in failure(answer)


async def test_a_large_review_is_converted_off_the_event_loop(
    https_server: tuple[str, ssl.SSLContext, Any, Path],
) -> None:
    base, client_ssl, _, _ = https_server
    objects = [
        {**BOOK_BUILD, "metadata": {"name": f"b{i}", "namespace": "default"}} for i in range(500)
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/convert", json=review(objects), ssl=client_ssl) as resp,
    ):
        answer = await resp.json()
    converted = answer["response"]["convertedObjects"]
    assert [o["metadata"]["name"] for o in converted] == [f"b{i}" for i in range(500)]
    assert all(o["apiVersion"] == V1BETA1 for o in converted)


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    https_server: tuple[str, ssl.SSLContext, Any, Path],
) -> None:
    base, _, _, _ = https_server
    other_ca, _, _ = generate_self_signed(["localhost"], ["127.0.0.1"], days=1)
    untrusting = ssl.create_default_context(cadata=other_ca.decode())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{base}/health", ssl=untrusting)


async def test_certificate_rotation_applies_to_new_connections(
    https_server: tuple[str, ssl.SSLContext, Any, Path],
) -> None:
    base, old_client_ssl, runner, tmp_path = https_server
    new_ca, cert_pem, key_pem = generate_self_signed(["localhost"], ["127.0.0.1"], days=1)
    reload_certificate(runner, *write_pair(tmp_path, "rotated", cert_pem, key_pem))
    new_client_ssl = ssl.create_default_context(cadata=new_ca.decode())
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/health", ssl=new_client_ssl) as response,
    ):
        assert response.status == 200
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{base}/health", ssl=old_client_ssl)


def test_review_answers_are_json_serialisable() -> None:
    json.dumps(handle_review(review([BOOK_BUILD])))
