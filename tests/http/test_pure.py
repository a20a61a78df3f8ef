"""The pure parts of HTTP push tasks: validation, signature, Retry-After, classification."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hare.core.retry import RetryPolicy
from hare.errors import ConfigurationError, DeadLetterError
from hare.http.classify import (
    Delivered,
    GiveUp,
    Response,
    RetryLater,
    classify,
    excerpt,
    retry_delay,
    transport_failure,
)
from hare.http.errors import InvalidPush
from hare.http.headers import mask, outgoing
from hare.http.retry_after import parse_retry_after
from hare.http.signature import canonical, sign, verify
from hare.http.spec import (
    DEFAULT_RETRY,
    PushSpec,
    Sending,
    check_headers,
    check_method,
    check_url,
    encode_body,
)

NOW = 1_700_000_000.0


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "svc/hook",
        "/hook",
        "ftp://svc/hook",
        "https://",
        "https://user:pw@svc/hook",
        "https://svc:99999/hook",
        "https://svc/a b",
        "",
        None,
        42,
    ],
)
def test_a_url_must_be_absolute_http_without_credentials(url: Any) -> None:
    with pytest.raises(InvalidPush):
        check_url(url)


def test_good_urls_pass_as_they_are() -> None:
    for url in ("https://svc/hook", "http://127.0.0.1:8080/a?b=c", "https://[::1]/x"):
        assert check_url(url) == url


def test_methods_are_a_known_set_in_any_case() -> None:
    assert check_method("post") == "POST"
    for bad in ("FETCH", "", None, 1):
        with pytest.raises(InvalidPush):
            check_method(bad)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": 1},
        {1: "a"},
        {"X-A": None},
        {"Bad Name": "a"},
        {"X-A": "a\r\nX-B: b"},
        {"Idempotency-Key": "mine"},
        {"x-hare-signature": "sha256=00"},
        {"Content-Length": "3"},
        {"Authorization": "Bearer t"},
        {"cookie": "a=b"},
        ["X-A", "a"],
    ],
)
def test_bad_or_reserved_or_credential_headers_are_refused(headers: Any) -> None:
    with pytest.raises(InvalidPush):
        check_headers(headers)


def test_credentials_are_allowed_only_as_a_hooks_secret_headers() -> None:
    assert check_headers({"Authorization": "Bearer t"}, secret=True) == {
        "Authorization": "Bearer t"
    }
    with pytest.raises(InvalidPush):
        check_headers({"X-Hare-Attempt": "9"}, secret=True)


def test_a_body_is_exactly_one_of_json_and_data() -> None:
    assert encode_body({"a": "é"}, None, has_json=True) == (
        '{"a":"é"}'.encode(),
        "application/json",
    )
    assert encode_body(None, None, has_json=True) == (b"null", "application/json")
    assert encode_body(None, b"\x00\x01", has_json=False)[0] == b"\x00\x01"
    assert encode_body(None, "text", has_json=False)[1] == "text/plain; charset=utf-8"
    assert encode_body(None, None, has_json=False, method="GET") == (b"", None)
    cases: list[tuple[Any, Any, bool]] = [(1, b"x", True), (None, None, False), (None, 3, False)]
    for json, data, has_json in cases:
        with pytest.raises(InvalidPush):
            encode_body(json, data, has_json=has_json)
    with pytest.raises(InvalidPush):
        encode_body({1, 2}, None, has_json=True)


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": -1}, {"max_per_host": 0}, {"max_per_host": 1.5}, {"timeout": "1"}],
)
def test_sending_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidPush):
        Sending(**options)


def test_a_spec_survives_the_wire_text_and_binary() -> None:
    for body in (b'{"a":1}', b"\xff\xfe binary"):
        spec = PushSpec(
            url="https://svc/hook",
            headers={"X-A": "b"},
            body=body,
            hook="h",
            sending=Sending(timeout=2.5, max_per_host=3, follow_redirects=True),
            retry=RetryPolicy(max_retries=2, retry_backoff=2.0),
        )
        assert PushSpec.from_kwargs(spec.to_kwargs()) == spec


@pytest.mark.parametrize(
    "change",
    [
        {"url": "nope"},
        {"body": 3},
        {"body_encoding": "rot13"},
        {"body": "%%%", "body_encoding": "base64"},
        {"sending": {"unknown": 1}},
        {"retry": {"max_retries": -1}},
        {"headers": {"Authorization": "x"}},
        {"hook": 7},
    ],
)
def test_kwargs_that_do_not_hold_together_are_an_invalid_push(change: dict[str, Any]) -> None:
    kwargs = {**PushSpec(url="https://svc/hook").to_kwargs(), **change}
    with pytest.raises(InvalidPush):
        PushSpec.from_kwargs(kwargs)


def test_the_default_retry_policy_is_ten_retries_of_exponential_backoff() -> None:
    assert DEFAULT_RETRY.max_retries == 10
    assert DEFAULT_RETRY.retry_backoff is True and DEFAULT_RETRY.retry_jitter


def test_dead_letter_error_takes_a_reason_word_and_a_detail() -> None:
    exc = DeadLetterError("http-404", "HTTP 404 from POST ...")
    assert (exc.dead_reason, exc.reason, exc.requeue) == (
        "http-404",
        "HTTP 404 from POST ...",
        False,
    )
    for bad in ("", "HTTP 404", "-x", "a" * 65, "a/b"):
        with pytest.raises(ConfigurationError):
            DeadLetterError(bad)


# -- signature ------------------------------------------------------------------------------


URL = "https://billing.internal/hooks/order-paid"
SIGNED = {"method": "POST", "url": URL}


def test_the_signature_is_hmac_sha256_of_timestamp_method_url_id_and_body() -> None:
    body = b'{"order":42}'
    fields = {"timestamp": "1700000000", "method": "POST", "url": URL, "task_id": "id-1"}
    message = b"1700000000\nPOST\n" + URL.encode() + b'\nid-1\n{"order":42}'
    assert canonical(**fields, body=body) == message
    expected = hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
    assert sign("s3cret", **fields, body=body) == "sha256=" + expected
    # A fixed vector, for receivers in other languages (docs/http-tasks.md).
    assert sign("s3cret", **fields, body=body) == (
        "sha256=4d1fb8f08a005455f148124da5bab57b1765ee242966a95c64d36dea2e007ef2"
    )


def test_the_signed_fields_cannot_run_into_each_other() -> None:
    """With '.' between fields, task id "a.b" and body "c" signed what "a" and "b.c" did; a
    line break cannot be in a field, so each signed string reads back one way only."""
    one = canonical(timestamp="1", method="POST", url=URL, task_id="a.b", body=b"c")
    other = canonical(timestamp="1", method="POST", url=URL, task_id="a", body=b"b.c")
    assert one != other
    for field in ("method", "url", "task_id"):
        with pytest.raises(ValueError):
            canonical(**{"timestamp": "1", **SIGNED, "task_id": "id", field: "x\ny"}, body=b"")


def test_an_empty_secret_never_signs() -> None:
    with pytest.raises(ValueError):
        sign("", timestamp="1", **SIGNED, task_id="id", body=b"")
    headers = outgoing(
        {}, **SIGNED, task_id="id", attempt=1, timestamp=1, body=b"", secret="", user_agent="x"
    )
    assert "X-Hare-Signature" not in headers


def _signed(secret: str, body: bytes, at: float = NOW, task_id: str = "id-1") -> dict[str, str]:
    return outgoing(
        {"Content-Type": "application/json"},
        **SIGNED,
        task_id=task_id,
        attempt=2,
        timestamp=int(at),
        body=body,
        secret=secret,
        user_agent="hare/x",
    )


def _verify(secret: Any, headers: dict[str, Any], body: Any, *, now: float) -> bool:
    return verify(secret, headers, body, method="POST", url=URL, now=now)


def test_verify_accepts_a_genuine_request_with_headers_in_any_case() -> None:
    headers = _signed("k", b"body")
    assert _verify("k", headers, b"body", now=NOW)
    lower = {k.lower(): v for k, v in headers.items()}
    assert _verify("k", lower, b"body", now=NOW + 299)
    assert _verify(["old", "k"], headers, b"body", now=NOW)  # while rotating secrets
    dotted = _signed("k", b"body", task_id="order.42.paid")  # ids are the user's to choose
    assert _verify("k", dotted, b"body", now=NOW)


@pytest.mark.parametrize(
    ("secret", "body", "now", "tamper"),
    [
        ("other", b"body", NOW, {}),
        ("k", b"body!", NOW, {}),
        ("k", b"body", NOW + 301, {}),
        ("k", b"body", NOW - 301, {}),
        ("k", b"body", NOW, {"X-Hare-Task-Id": "id-2"}),
        ("k", b"body", NOW, {"X-Hare-Timestamp": "x"}),
        ("k", b"body", NOW, {"X-Hare-Signature": "md5=00"}),
        ("", b"body", NOW, {}),
    ],
)
def test_verify_refuses_anything_else(
    secret: str, body: bytes, now: float, tamper: dict[str, str]
) -> None:
    headers = {**_signed("k", b"body"), **tamper}
    assert not _verify(secret, headers, body, now=now)
    assert not _verify("k", {}, b"body", now=NOW)


@pytest.mark.parametrize(
    ("method", "url"),
    [("PUT", URL), ("POST", "https://attacker.example/hooks/order-paid"), ("POST", URL + "?x=1")],
)
def test_a_signature_is_good_only_for_the_method_and_url_it_was_made_for(
    method: str, url: str
) -> None:
    assert not verify("k", _signed("k", b"body"), b"body", method=method, url=url, now=NOW)


_HOSTILE: list[dict[str, Any]] = [
    {"X-Hare-Signature": "sha256=é" + "0" * 63},  # compare_digest raised TypeError
    {"X-Hare-Signature": "sha256=\u0660" * 3},
    {"X-Hare-Timestamp": "9" * 5000},  # int() raised ValueError
    {"X-Hare-Timestamp": "9" * 13},
    {"X-Hare-Timestamp": "\u0661\u0667\u0660\u0660"},  # Arabic-Indic digits: isdigit()
    {"X-Hare-Timestamp": "1700000000\n"},
    {"X-Hare-Timestamp": "-1700000000"},
    {"X-Hare-Timestamp": ""},
    {"X-Hare-Task-Id": "ïd-1"},
    {"X-Hare-Task-Id": "id-1\nPOST"},
    {"X-Hare-Task-Id": ""},
    {"X-Hare-Signature": ""},
    {"X-Hare-Signature": None},
    {"X-Hare-Timestamp": 1700000000},
    {"X-Hare-Task-Id": b"id-1"},
]


@pytest.mark.parametrize("tamper", _HOSTILE)
def test_verify_says_false_to_hostile_headers_and_never_raises(tamper: dict[str, Any]) -> None:
    headers = {**_signed("k", b"body"), **tamper}
    assert not _verify("k", headers, b"body", now=NOW)
    missing = {k: v for k, v in _signed("k", b"body").items() if k not in tamper}
    assert not _verify("k", missing, b"body", now=NOW)


_header_names = st.sampled_from(["X-Hare-Timestamp", "x-hare-task-id", "X-HARE-SIGNATURE", "X"])


@given(st.dictionaries(_header_names, st.text() | st.none() | st.binary()), st.text(), st.text())
def test_verify_never_raises_on_any_headers_method_or_url(
    headers: dict[str, Any], method: str, url: str
) -> None:
    assert verify("k", headers, b"body", method=method, url=url, now=NOW) in (True, False)


def test_verify_says_false_to_a_hostile_method_url_or_body() -> None:
    headers = _signed("k", b"body")
    bad: list[tuple[Any, Any, Any]] = [
        ("POST\n", URL, b"body"),
        ("PÖST", URL, b"body"),
        ("POST", URL + "\n", b"body"),
        (None, URL, b"body"),
        ("POST", None, b"body"),
        ("POST", URL, "body"),
    ]
    for method, url, body in bad:
        assert not verify("k", headers, body, method=method, url=url, now=NOW)
    with pytest.raises(TypeError):  # the receiver's own configuration, not the request
        _verify(b"k", headers, b"body", now=NOW)


def test_hare_headers_and_masking() -> None:
    headers = outgoing(
        {"X-A": "b", "User-Agent": "me"},
        **SIGNED,
        task_id="id-1",
        attempt=3,
        timestamp=1700000000,
        body=b"",
        secret="k",
        user_agent="hare/x",
    )
    assert headers["Idempotency-Key"] == headers["X-Hare-Task-Id"] == "id-1"
    assert (headers["X-Hare-Attempt"], headers["X-Hare-Timestamp"]) == ("3", "1700000000")
    assert headers["User-Agent"] == "me"
    masked = mask({**headers, "Authorization": "Bearer t"})
    assert masked["Authorization"] == masked["X-Hare-Signature"] == "***"
    assert masked["X-A"] == "b"


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),  # NOW + 100 s
        ("Tuesday, 14-Nov-23 22:15:00 GMT", 100.0),
        ("Tue Nov 14 22:15:00 2023", 100.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: at once
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_either_form(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


# -- classification -------------------------------------------------------------------------


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, reason="Why", headers=headers or {}, body=body, elapsed=0.25)


def _classify(response: Response) -> Delivered | RetryLater | GiveUp:
    return classify(response, method="POST", url="https://svc/hook", attempt=2, now=NOW)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Delivered),
        (204, {}, Delivered),
        (299, {}, Delivered),
        (301, {"location": "https://elsewhere/"}, GiveUp),
        (304, {}, GiveUp),
        (400, {}, GiveUp),
        (401, {}, GiveUp),
        (404, {}, GiveUp),
        (408, {}, RetryLater),
        (409, {}, GiveUp),
        (422, {}, GiveUp),
        (429, {}, RetryLater),
        (429, {"retry-after": "7"}, RetryLater),
        (500, {}, RetryLater),
        (502, {}, RetryLater),
        (503, {"retry-after": "Tue, 14 Nov 2023 22:15:00 GMT"}, RetryLater),
        (504, {}, RetryLater),
        (600, {}, GiveUp),
    ],
)
def test_the_outcome_table(status: int, headers: dict[str, str], expected: type) -> None:
    step = _classify(_response(status, b"why", headers))
    assert type(step) is expected
    if not isinstance(step, Delivered):
        assert step.reason == f"http-{status}" and step.status == status


def test_retry_after_is_honoured_only_for_429_and_503() -> None:
    assert _classify(_response(429, headers={"retry-after": "7"})) == RetryLater(
        reason="http-429", detail="HTTP 429 Why from POST https://svc/hook", status=429, after=7.0
    )
    step = _classify(_response(500, headers={"retry-after": "7"}))
    assert isinstance(step, RetryLater) and step.after is None


def test_a_redirect_names_its_location_and_a_4xx_its_body() -> None:
    step = _classify(_response(302, headers={"location": "https://svc/new"}))
    assert isinstance(step, GiveUp) and "https://svc/new" in step.detail
    step = _classify(_response(404, b"no such order"))
    assert isinstance(step, GiveUp) and step.detail.endswith(": no such order")


def test_a_result_is_small_and_has_no_cookies() -> None:
    body = b"x" * 5000
    step = _classify(
        _response(200, body, {"content-type": "text/plain", "set-cookie": "s=1", "etag": "e"})
    )
    assert isinstance(step, Delivered)
    assert step.result == {
        "status": 200,
        "headers": {"content-type": "text/plain", "etag": "e"},
        "body": "x" * 1024 + "...",
        "elapsed": 0.25,
        "attempt": 2,
    }
    assert excerpt(b"\xff ok") == "\ufffd ok"


class Fixed:
    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_retry_delay_is_retry_after_capped_else_the_backoff() -> None:
    policy = RetryPolicy(retry_backoff=True, retry_backoff_max=600.0)
    later = RetryLater(reason="http-429", detail="", after=30.0)
    assert retry_delay(later, policy, 0, Fixed(), cap=3600.0) == (30.0, False)
    assert retry_delay(later, policy, 0, Fixed(), cap=10.0) == (10.0, True)
    backoff = transport_failure("timeout", "no response", method="POST", url="u")
    assert backoff.reason == "http-timeout"
    assert retry_delay(backoff, policy, 3, Fixed(), cap=10.0) == (8.0, False)


def test_the_http_settings_come_from_arguments_and_the_environment() -> None:
    from hare.core.settings import Settings

    environ = {"HARE_HTTP_SIGNING_SECRET": "k", "HARE_HTTP_TIMEOUT": "2.5"}
    settings = Settings.resolve({"http_max_per_host": 3}, environ)
    assert (settings.http_signing_secret, settings.http_timeout, settings.http_max_per_host) == (
        "k",
        2.5,
        3,
    )
    assert "'k'" not in repr(settings)
    for bad in ({"http_timeout": 0}, {"http_max_per_host": 0}):
        with pytest.raises(ConfigurationError):
            Settings.resolve(bad, {})
