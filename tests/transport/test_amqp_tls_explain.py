"""How `hare.transport.amqp.tls.explain` words each TLS failure, from the exceptions aiormq
passes on (built here as aiormq builds them; no broker). The same failures on a real
RabbitMQ: tests/amqp/test_tls_amqp.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiormq.exceptions import AMQPConnectionError

from hare.transport.amqp.tls import explain

pytestmark = pytest.mark.anyio

URL = "amqps://u:pw@rabbit:5671/?cafile=/etc/hare/ca.pem"


def _wrapped(cause: OSError) -> AMQPConnectionError:
    """What aiormq raises for a socket error of `asyncio.open_connection`."""
    try:
        raise AMQPConnectionError(*cause.args) from cause
    except AMQPConnectionError as exc:
        return exc


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    return error


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, reason)
    error.reason = reason
    return error


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (10, "certificate has expired", "TLS: the broker's certificate has expired"),
        (9, "certificate is not yet valid", "TLS: the broker's certificate is not valid yet"),
        (
            20,
            "unable to get local issuer certificate",
            "TLS: certificate verify failed: unable to get local issuer certificate (wrong CA? "
            "cafile /etc/hare/ca.pem did not sign the broker's certificate)",
        ),
        (62, "Hostname mismatch", "TLS: the broker's certificate is not for rabbit"),
        (26, "unsuitable certificate purpose", "TLS: certificate verify failed: unsuitable"),
    ],
)
async def test_the_broker_certificate_a_client_rejects(
    code: int, message: str, expected: str
) -> None:
    said = await explain(_wrapped(_verify_error(code, message)), URL, probe_for=1)
    assert said is not None and said.startswith(expected)


async def test_without_a_cafile_the_system_cas_are_named() -> None:
    error = _wrapped(_verify_error(19, "self-signed certificate in certificate chain"))
    said = await explain(error, "amqps://rabbit/", probe_for=1)
    assert said is not None and "no cafile given: the system's CAs" in said


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("WRONG_VERSION_NUMBER", "TLS: the port answered, but not with TLS"),
        ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "the broker refused the client certificate: it has"),
        ("TLSV1_ALERT_UNKNOWN_CA", "the broker refused the client certificate: signed by a CA"),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "the broker requires a client certificate"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", "TLS: the broker sent the alert 'handshake failure'"),
    ],
)
async def test_what_the_broker_said_in_tls(reason: str, expected: str) -> None:
    said = await explain(_wrapped(_ssl_error(reason)), URL, probe_for=1)
    assert said is not None and expected in said


async def test_a_connection_cut_off_mid_handshake_is_not_called_a_tls_failure() -> None:
    """An EOF in the handshake may be a broker restarting: left to the reconnect loop."""
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    assert await explain(_wrapped(eof), URL, probe_for=1) is None


async def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    """aiormq makes its context before connecting, and passes that error on unwrapped."""
    missing = tmp_path / "client.key"
    url = f"amqps://rabbit/?certfile={tmp_path}/client.pem&keyfile={missing}"
    (tmp_path / "client.pem").write_text("")
    said = await explain(FileNotFoundError(2, "No such file or directory"), url, probe_for=1)
    assert said == f"TLS: cannot read keyfile {missing}: no such file"


async def test_errors_that_are_not_tls_are_left_alone() -> None:
    refused = _wrapped(ConnectionRefusedError(111, "Connection refused"))
    assert await explain(refused, URL, probe_for=1) is None
    assert await explain(TimeoutError(), URL, probe_for=1) is None
    plain = "amqp://u:pw@rabbit/"
    assert await explain(refused, plain, probe_for=1) is None
