"""Why a connection failed on TLS, in words an operator can act on (`explain`).

aiormq reports most TLS failures as it meets them: a broker certificate the client rejects
as an `ssl.SSLCertVerificationError` of the handshake, a TLS file it cannot load as the
`OSError` or `ssl.SSLError` of making the context, a port that does not speak TLS as
``WRONG_VERSION_NUMBER``. Two cases arrive as a bare connection reset, the broker's TLS
alert lost on the way (RabbitMQ closes its sockets with a reset): a client certificate the
broker refused (TLS 1.3 checks it after the handshake) and plain AMQP sent to a TLS port
(RabbitMQ answers the AMQP header with a TLS alert). For those, `explain` connects once more
and reads what the broker says first. A cause found is returned as a sentence starting with
"TLS:"; `None` means the failure was not about TLS, or not certainly (it may pass).

Part of the AMQP transport (`hare.transport.amqp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import ssl
from base64 import b64decode
from collections.abc import Mapping
from typing import Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

from aiormq.exceptions import AMQPConnectionError

__all__ = ("explain",)

E = TypeVar("E", bound=BaseException)

#: The AMQP 0-9-1 protocol header: what a client sends first.
_AMQP_HEADER: Final = b"AMQP\x00\x00\x09\x01"
#: How long a probe waits for the broker's first bytes (an alert comes at once).
_ALERT_WAIT: Final = 2.0
#: The first bytes of a TLS alert record (content type 21, TLS major version 3).
_TLS_ALERT: Final = b"\x15\x03"
#: OpenSSL's verify codes for a chain that does not end at a CA the client trusts.
_UNTRUSTED: Final = frozenset({2, 18, 19, 20, 21})
_EXPIRED, _NOT_YET_VALID, _HOST_MISMATCH, _IP_MISMATCH = 10, 9, 62, 64
#: What the peer said in a TLS alert that means "not TLS" (OpenSSL reasons).
_NOT_TLS: Final = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"}
)
#: The broker's alert about the client's certificate, by the alert's name.
_CLIENT_CERT_ALERTS: Final[Mapping[str, str]] = {
    "CERTIFICATE_EXPIRED": "the broker refused the client certificate: it has expired",
    "CERTIFICATE_REVOKED": "the broker refused the client certificate: it is revoked",
    "BAD_CERTIFICATE": "the broker refused the client certificate (bad certificate: "
    "not signed by a CA the broker trusts?)",
    "UNKNOWN_CA": "the broker refused the client certificate: signed by a CA it does not trust",
    "CERTIFICATE_UNKNOWN": "the broker refused the client certificate (certificate unknown)",
    "UNSUPPORTED_CERTIFICATE": "the broker refused the client certificate (unsupported)",
    "CERTIFICATE_REQUIRED": "the broker requires a client certificate: give certfile and keyfile",
}
#: Ends of a connection that say nothing about TLS: the peer went away (a restart?).
_CUT_OFF: Final = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


async def explain(exc: BaseException, url: str, *, probe_for: float) -> str | None:
    """The TLS cause of `exc`, a failed connect to `url`, or `None` when it was not TLS;
    a probe, when one is needed, gets up to `probe_for` seconds."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    secure = parts.scheme == "amqps"
    verify = _find(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        return _verify_failure(verify, parts.hostname or "localhost", options)
    if secure and not isinstance(exc, AMQPConnectionError):
        # aiormq wraps every error of the socket: one it does not was met making the context.
        return _file_failure(exc, options)
    failure = _find(exc, ssl.SSLError)
    if failure is not None:
        return _ssl_failure(failure)
    if _cut_off(exc):
        return await _probe(parts.hostname or "localhost", parts.port, options, secure, probe_for)
    return None


def _find(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first of its causes that is a `kind` (aiormq chains its own errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _cut_off(exc: BaseException) -> bool:
    """The broker reset or closed the connection before AMQP began."""
    if not isinstance(exc, AMQPConnectionError):
        return False
    return (
        _find(exc, ConnectionResetError) is not None
        or _find(exc, asyncio.IncompleteReadError) is not None
        or _find(exc, EOFError) is not None
    )


def _verify_failure(
    exc: ssl.SSLCertVerificationError, host: str, options: Mapping[str, str]
) -> str:
    code, message = exc.verify_code, exc.verify_message
    if code == _EXPIRED:
        return f"TLS: the broker's certificate has expired (certificate verify failed: {message})"
    if code == _NOT_YET_VALID:
        return f"TLS: the broker's certificate is not valid yet (check the clocks): {message}"
    if code in (_HOST_MISMATCH, _IP_MISMATCH):
        return f"TLS: the broker's certificate is not for {host} ({message})"
    if code in _UNTRUSTED:
        cafile = options.get("cafile")
        trusted = f"cafile {cafile}" if cafile else "no cafile given: the system's CAs"
        return (
            f"TLS: certificate verify failed: {message} (wrong CA? {trusted} did not sign "
            "the broker's certificate)"
        )
    return f"TLS: certificate verify failed: {message}"


def _file_failure(exc: BaseException, options: Mapping[str, str]) -> str | None:
    """A TLS file that cannot be read or loaded, from the error of making the context."""
    if not isinstance(exc, ssl.SSLError) and not (
        isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR)
    ):
        return None
    for name in ("cafile", "capath", "certfile", "keyfile"):
        path = options.get(name)
        if path and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            return f"TLS: cannot read {name} {path}: {reason}"
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        certfile, keyfile = options.get("certfile"), options.get("keyfile")
        return f"TLS: keyfile {keyfile} is not the key of certfile {certfile}"
    given = ", ".join(
        f"{name} {options[name]}" for name in ("cafile", "certfile", "keyfile") if name in options
    )
    return f"TLS: cannot load {given or 'the TLS files'}: {getattr(exc, 'reason', None) or exc}"


def _ssl_failure(exc: ssl.SSLError) -> str | None:
    if isinstance(exc, _CUT_OFF):
        return None
    reason = exc.reason or ""
    if reason in _NOT_TLS:
        return (
            "TLS: the port answered, but not with TLS (a plain AMQP port? use amqp://, or "
            "the broker's TLS port)"
        )
    alert = reason.partition("_ALERT_")[2]
    if alert in _CLIENT_CERT_ALERTS:
        return f"TLS: {_CLIENT_CERT_ALERTS[alert]}"
    if alert:
        return f"TLS: the broker sent the alert {alert.lower().replace('_', ' ')!r}"
    return f"TLS: {reason or exc}"


async def _probe(
    host: str, port: int | None, options: Mapping[str, str], secure: bool, probe_for: float
) -> str | None:
    """Connect again and read what the broker says first: a TLS alert tells what the reset
    hid. `None` when it says nothing about TLS (or nothing within `_ALERT_WAIT`).

    Over TLS the probe sends nothing after the handshake: the broker checks the client's
    certificate on receiving the client's last handshake message and answers with its alert;
    bytes of ours arriving after it closed would make its reset overtake the alert. On a
    plain connection it sends the AMQP header, which a TLS port answers with an alert."""
    port = port or (5671 if secure else 5672)
    try:
        async with asyncio.timeout(probe_for):
            context = await asyncio.to_thread(_context, options) if secure else None
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            async with asyncio.timeout(_ALERT_WAIT):
                if not secure:
                    writer.write(_AMQP_HEADER)
                first = await reader.read(8)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except ssl.SSLCertVerificationError as exc:
        return _verify_failure(exc, host, options)
    except ssl.SSLError as exc:
        return _ssl_failure(exc)
    except (OSError, EOFError):  # TimeoutError included: the broker waits for the header
        return None
    if not secure and first.startswith(_TLS_ALERT):
        return "TLS: the port speaks TLS: plain AMQP was sent to a TLS port (use amqps://)"
    return None


def _context(options: Mapping[str, str]) -> ssl.SSLContext:
    """The client context aiormq makes from the same URL options."""
    cadata = options.get("cadata")
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=options.get("cafile"),
        capath=options.get("capath"),
        cadata=b64decode(cadata) if cadata else None,
    )
    if options.get("certfile"):
        context.load_cert_chain(options["certfile"], options.get("keyfile"))
    if options.get("no_verify_ssl", "0") != "0":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
