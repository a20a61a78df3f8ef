"""Settings resolution: arguments, HARE_* environment variables, validation."""

from __future__ import annotations

import pytest

from hare import Hare
from hare.core.settings import DEFAULT_BROKER_URL, Settings
from hare.errors import ConfigurationError


def test_defaults() -> None:
    settings = Settings.resolve({}, {})
    assert settings.broker_url == DEFAULT_BROKER_URL
    assert settings.default_queue == "default"
    assert settings.accept_content == frozenset({"json"})


def test_environment_overrides_arguments() -> None:
    settings = Settings.resolve(
        {"broker_url": "amqp://a/", "default_queue": "x"},
        {
            "HARE_BROKER_URL": "amqp://b/",
            "HARE_CONNECT_TIMEOUT": "2.5",
            "HARE_ACCEPT_CONTENT": "json, pickle",
        },
    )
    assert settings.broker_url == "amqp://b/"
    assert settings.default_queue == "x"
    assert settings.connect_timeout == 2.5
    assert settings.accept_content == frozenset({"json", "pickle"})


@pytest.mark.parametrize(
    ("arguments", "environ", "words"),
    [
        ({"brokr": "x"}, {}, "unknown setting(s): brokr"),
        ({"queue_type": "stream"}, {}, "queue_type must be one of"),
        ({}, {"HARE_CONNECT_TIMEOUT": "soon"}, "HARE_CONNECT_TIMEOUT='soon' is not a number"),
        ({"default_queue": "amq.x"}, {}, "reserved"),
        ({"default_queue": "q" * 200}, {}, "longer than 191 bytes"),
        ({"publish_timeout": 0}, {}, "publish_timeout must be positive"),
    ],
)
def test_bad_settings_are_refused_clearly(arguments, environ, words) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.resolve(arguments, environ)
    assert words in str(caught.value)


def test_app_takes_broker_from_environment() -> None:
    app = Hare("x", broker="amqp://arg/", environ={"HARE_BROKER_URL": "memory://"})
    assert app.settings.broker_url == "memory://"
    assert "memory://" in repr(app)


def test_password_is_masked_in_repr() -> None:
    app = Hare("x", broker="amqp://user:s3cret@host:5672/", environ={})
    assert "s3cret" not in repr(app) and "***" in repr(app)


def test_unsupported_broker_url() -> None:
    app = Hare("x", broker="redis://localhost/", environ={})
    with pytest.raises(ConfigurationError, match="unsupported broker URL"):
        app.make_transport()
