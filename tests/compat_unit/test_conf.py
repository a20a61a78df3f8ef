"""Celery settings in hare_compat: three spellings, namespaces, sources, checks and notices."""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hare.errors import ConfigurationError, NotSupportedError
from hare_compat import Celery
from hare_compat.app.defaults import DEFAULTS, NEW_TO_OLD, OLD_TO_NEW
from hare_compat.app.mapping import hare_settings
from hare_compat.exceptions import ImproperlyConfigured


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hare_compat.conf"]


def test_the_names_and_defaults_are_celerys() -> None:
    from celery.app.defaults import _TO_NEW_KEY, _TO_OLD_KEY
    from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS

    assert dict(DEFAULTS) == CELERY_DEFAULTS
    assert dict(NEW_TO_OLD) == _TO_OLD_KEY
    assert dict(OLD_TO_NEW) == _TO_NEW_KEY


class Lowercase:
    broker_url = "memory://"
    task_always_eager = True
    worker_concurrency = 7
    task_default_queue = "work"
    task_serializer = "json"


class Namespaced:
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_WORKER_CONCURRENCY = 7
    CELERY_TASK_DEFAULT_QUEUE = "work"
    DEBUG = True  # a Django setting of the same module: not Celery's business


class Celery3:
    BROKER_URL = "memory://"
    CELERY_ALWAYS_EAGER = True
    CELERYD_CONCURRENCY = 7
    CELERY_DEFAULT_QUEUE = "work"


@pytest.mark.parametrize(
    ("source", "namespace"),
    [(Lowercase, None), (Namespaced, "CELERY"), (Celery3, None), (Celery3, "CELERY")],
)
def test_each_spelling_reads_the_same_settings(source: type, namespace: str | None) -> None:
    app = Celery("proj", set_as_current=False)
    app.config_from_object(source, namespace=namespace)
    conf = app.conf
    assert (conf.broker_url, conf.task_always_eager, conf.worker_concurrency) == (
        "memory://",
        True,
        7,
    )
    assert conf["task_default_queue"] == conf.CELERY_DEFAULT_QUEUE == "work"
    assert conf.task_eager_propagates is False  # Celery's default
    assert app.worker_options() == {
        "queues": ["work"],
        "concurrency": 7,
        "pool": "prefork",
        "pool_start_method": "fork",
    }
    assert hare_settings(conf)["default_queue"] == "work"
    assert app.hare.settings.broker_url == "memory://"


def test_a_namespace_reads_only_its_prefix_and_maps_to_lowercase() -> None:
    app = Celery(set_as_current=False, namespace="CELERY")
    app.config_from_object({"CELERY_TASK_ACKS_LATE": True, "task_acks_late": False})
    assert app.conf.task_acks_late is True
    assert app.conf["CELERY_TASK_ACKS_LATE"] is True


def test_values_set_on_conf_win_over_the_source_and_defaults() -> None:
    app = Celery(set_as_current=False, broker="memory://")
    app.conf.task_default_queue = "early"  # before the source is read
    app.config_from_object({"task_default_queue": "source", "task_ignore_result": True})
    assert app.conf.task_default_queue == "early"
    app.conf.update(task_ignore_result=False, result_expires=60)
    app.conf["timezone"] = "Europe/Berlin"
    assert (app.conf.task_ignore_result, app.conf.result_expires) == (False, 60)
    assert app.conf.timezone == "Europe/Berlin"
    assert app.conf.value_set_for("result_expires")
    assert not app.conf.value_set_for("task_track_started")
    assert app.conf.setdefault("task_default_queue", "x") == "early"
    assert app.conf.setdefault("task_track_started", True) is True


def test_a_default_dict_is_the_apps_own() -> None:
    first, second = Celery(set_as_current=False), Celery(set_as_current=False)
    first.conf.beat_schedule["a"] = {"task": "t", "schedule": 5}
    assert list(first.conf.beat_schedule) == ["a"]
    assert second.conf.beat_schedule == {}


def test_mixing_old_and_new_names_is_refused_as_celery_does() -> None:
    app = Celery(set_as_current=False)
    app.config_from_object(
        {"broker_url": "memory://", "task_acks_late": True, "BROKER_HEARTBEAT": 5}
    )
    with pytest.raises(ImproperlyConfigured, match=r"BROKER_HEARTBEAT +-> broker_heartbeat"):
        app.conf.broker_url  # noqa: B018 -- the first read loads the configuration
    mostly_old = Celery(set_as_current=False)
    mostly_old.config_from_object(
        {"BROKER_URL": "memory://", "CELERY_ACKS_LATE": True, "task_ignore_result": 1}
    )
    with pytest.raises(ImproperlyConfigured, match="to the old format"):
        mostly_old.conf.load()


def test_one_setting_in_both_spellings_is_not_a_mix() -> None:
    app = Celery(set_as_current=False)
    app.config_from_object({"broker_url": "memory://", "BROKER_URL": "memory://"})
    assert app.conf.broker_url == "memory://"


def test_celery_arguments_do_not_count_as_a_mix() -> None:
    app = Celery(set_as_current=False, broker="memory://", task_acks_late=True)
    app.config_from_object({"CELERY_ALWAYS_EAGER": True, "CELERY_ACKS_LATE": True})
    assert app.conf.task_always_eager is True


def test_an_old_or_namespaced_name_is_also_read_under_a_namespace() -> None:
    app = Celery(set_as_current=False)
    app.config_from_object(
        {"BROKER_URL": "memory://", "CELERY_TASK_IGNORE_RESULT": True}, namespace="CELERY"
    )
    assert (app.conf.broker_url, app.conf.task_ignore_result) == ("memory://", True)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"CELERY_BROKER_URL": "redis://:pw@localhost:6379/0"},
            r"CELERY_BROKER_URL \(broker_url\)='redis://:\*\*\*@",
        ),
        ({"CELERY_BROKER_URL": "sqs://"}, "not sqs://"),
        (
            {"CELERY_RESULT_BACKEND": "django-db"},
            r"CELERY_RESULT_BACKEND \(result_backend\)='django-db'",
        ),
        ({"CELERY_RESULT_BACKEND": "db+postgresql://u:p@h/db"}, "result_backend"),
        ({"CELERY_RESULT_BACKEND": "cache+memcached://h:11211/"}, "result_backend"),
        ({"CELERY_TASK_PROTOCOL": 1}, r"task_protocol\)=1"),
        ({"CELERY_TASK_ANNOTATIONS": {"*": {"rate_limit": "1/s"}}}, "task_annotations"),
        (
            {"CELERY_BEAT_SCHEDULER": "django_celery_beat.schedulers:DatabaseScheduler"},
            "beat_scheduler",
        ),
        ({"CELERY_TASK_SERIALIZER": "yaml"}, "task_serializer"),
        ({"CELERY_RESULT_EXPIRES": None}, "result_expires"),
        ({"CELERY_BROKER_USE_SSL": {"ssl_version": 2}}, r"broker_use_ssl\) key 'ssl_version'"),
        ({"CELERY_TASK_DEFAULT_EXCHANGE_TYPE": "topic"}, "task_default_exchange_type"),
        ({"CELERY_BROKER_PASSWORD": "secret"}, r"broker_password\)=<hidden>"),
    ],
)
def test_a_value_hare_cannot_honour_raises_naming_the_setting(
    settings: dict[str, Any], named: str
) -> None:
    app = Celery(set_as_current=False)
    app.config_from_object(settings, namespace="CELERY")
    with pytest.raises(NotSupportedError, match=named):
        app.conf.load()


def test_a_refused_value_set_after_loading_raises_at_once() -> None:
    app = Celery(set_as_current=False, broker="memory://")
    app.conf.load()
    with pytest.raises(NotSupportedError, match="broker_url"):
        app.conf.broker_url = "redis://localhost"
    app.conf.task_routes = {"a": "b"}  # fine
    assert app.conf.task_routes == {"a": "b"}


def test_settings_that_only_tune_celery_log_one_notice_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hare_compat.conf")
    app = Celery(set_as_current=False, broker="memory://")
    app.config_from_object(
        {
            "CELERY_WORKER_HIJACK_ROOT_LOGGER": False,
            "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
            "CELERY_WORKER_PROC_ALIVE_TIMEOUT": 100,
            "CELERY_TASK_ACKS_LATE": True,
        },
        namespace="CELERY",
    )
    app.conf.load()
    app.conf.validate()
    app.conf.worker_proc_alive_timeout = 10
    found = notices(caplog)
    assert len(found) == 3
    assert any("CELERY_WORKER_HIJACK_ROOT_LOGGER (worker_hijack_root_logger)" in n for n in found)
    assert any("worker_proc_alive_timeout" in n and "prefork children" in n for n in found)


def test_acks_late_false_is_noticed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hare_compat.conf")
    app = Celery(set_as_current=False, broker="memory://", task_acks_late=False)
    app.conf.load()
    assert notices(caplog) == [
        "hare_compat: setting task_acks_late=False: hare always acks after the task ran "
        "(False, ack on receipt, is not offered: a notice says so)"
    ]


def test_names_that_look_like_settings_are_noticed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hare_compat.conf")
    typo = Celery(set_as_current=False)
    typo.config_from_object(
        {"CELERY_TASK_ROUTS": {}, "CELERY_BROKER_URL": "memory://"}, namespace="CELERY"
    )
    typo.conf.load()
    forgotten = Celery(set_as_current=False)
    forgotten.config_from_object({"CELERY_TASK_ALWAYS_EAGER": True, "broker_url": "memory://"})
    forgotten.conf.load()
    assert forgotten.conf.task_always_eager is False  # as Celery: ignored without namespace
    assert notices(caplog) == [
        "hare_compat: CELERY_TASK_ROUTS is not a Celery setting; ignored",
        "hare_compat: CELERY_TASK_ALWAYS_EAGER is read only with namespace='CELERY'; ignored",
    ]


def test_environment_variables_override_as_in_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "rpc://")
    app = Celery(set_as_current=False, broker="amqp://elsewhere//")
    assert app.conf.broker_url == "memory://"
    assert hare_settings(app.conf)["result_backend"] == "rpc://"


def test_a_module_path_is_imported_when_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d1_conf_pkg").mkdir()
    (tmp_path / "d1_conf_pkg" / "__init__.py").write_text("")
    (tmp_path / "d1_conf_pkg" / "celeryconfig.py").write_text(
        "from datetime import timedelta\nbroker_url = 'memory://'\n"
        "result_expires = timedelta(hours=1)\n"
        "class Settings:\n    CELERY_TASK_DEFAULT_QUEUE = 'from-attr'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = Celery(set_as_current=False)
    app.config_from_object("d1_conf_pkg.celeryconfig")
    assert "d1_conf_pkg.celeryconfig" not in sys.modules
    assert app.conf.result_expires == timedelta(hours=1)
    assert hare_settings(app.conf)["result_expires"] == 3600.0
    by_attr = Celery(set_as_current=False, broker="memory://")
    by_attr.config_from_object("d1_conf_pkg.celeryconfig:Settings", namespace="CELERY")
    assert by_attr.conf.task_default_queue == "from-attr"
    dotted = Celery(set_as_current=False, broker="memory://")
    dotted.config_from_object("d1_conf_pkg.celeryconfig.Settings", namespace="CELERY")
    assert dotted.conf.task_default_queue == "from-attr"


def test_config_from_envvar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "d1_env_config", SimpleNamespace(broker_url="memory://"))
    monkeypatch.setenv("D1_CONFIG", "d1_env_config")
    app = Celery(set_as_current=False)
    assert app.config_from_envvar("D1_CONFIG") is True
    assert app.conf.broker_url == "memory://"
    assert app.config_from_envvar("D1_UNSET", silent=True) is False
    with pytest.raises(ConfigurationError, match="D1_UNSET is not set"):
        app.config_from_envvar("D1_UNSET")


def test_tls_without_a_broker_url_secures_the_default_broker() -> None:
    app = Celery(set_as_current=False, broker_use_ssl=True)
    # No port: amqps:// means 5671, as kombu picks its TLS port.
    assert hare_settings(app.conf)["broker"] == "amqps://guest:guest@localhost/"


def test_a_missing_module_raises_unless_silent() -> None:
    loud = Celery(set_as_current=False)
    loud.config_from_object("d1_no_such_module")
    with pytest.raises(ModuleNotFoundError):
        loud.conf.load()
    quiet = Celery(set_as_current=False, broker="memory://")
    quiet.config_from_object("d1_no_such_module", silent=True)
    assert quiet.conf.task_default_queue == "celery"


class LazySettings:
    """Django's `settings`: attributes from a settings module, read on demand."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self.reads.append(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return list(self._values)


def test_a_django_style_settings_object_is_read_lazily_and_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = LazySettings(
        {
            "CELERY_BROKER_URL": "memory://",
            "TIME_ZONE": "Europe/Paris",
            "CELERY_TASK_ALWAYS_EAGER": False,
        }
    )
    monkeypatch.setitem(sys.modules, "d1_fake_django", SimpleNamespace())
    monkeypatch.setitem(sys.modules, "d1_fake_django.conf", SimpleNamespace(settings=settings))
    app = Celery("proj", set_as_current=False)
    app.config_from_object("d1_fake_django.conf:settings", namespace="CELERY")
    assert settings.reads == []
    assert app.conf.timezone == "Europe/Paris"  # Django's TIME_ZONE, as Celery reads it
    assert app.timezone_name == "Europe/Paris"
    settings._values["CELERY_TASK_ALWAYS_EAGER"] = True  # e.g. override_settings in a test
    assert app.conf.task_always_eager is True


def test_broker_urls_map_onto_hare() -> None:
    app = Celery(set_as_current=False)
    app.conf.update(
        broker_url="pyamqp://u:p@rabbit1//;amqp://u:p@rabbit2:5671/vh",
        broker_use_ssl={
            "ca_certs": "/ca.pem",
            "certfile": "/c.pem",
            "keyfile": "/k.pem",
            "cert_reqs": 0,
        },
        broker_heartbeat=10,
    )
    settings = hare_settings(app.conf)
    assert settings["broker"] == (
        "amqps://u:p@rabbit1//?cafile=%2Fca.pem&certfile=%2Fc.pem&keyfile=%2Fk.pem&no_verify_ssl=1;"
        "amqps://u:p@rabbit2:5671/vh?cafile=%2Fca.pem&certfile=%2Fc.pem&keyfile=%2Fk.pem&no_verify_ssl=1"
    )
    assert settings["heartbeat"] == 10
    assert "connect_timeout" not in settings  # Celery's default (4 s) is not copied
    listed = Celery(set_as_current=False, broker=["amqp://a//", "amqp://b//"])
    assert hare_settings(listed.conf)["broker"] == "amqp://a//;amqp://b//"


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (None, None),
        ("rpc://", "rpc://"),
        ("rpc", "rpc://"),
        ("redis://h:6379/1", "redis://h:6379/1"),
        ("cache+memory://", "memory://"),
    ],
)
def test_result_backends_map_onto_hare(backend: str | None, expected: str | None) -> None:
    app = Celery(set_as_current=False, broker="memory://", backend=backend)
    assert hare_settings(app.conf)["result_backend"] == expected


class FakeExchange:
    def __init__(self, name: str, type: str = "direct") -> None:
        self.name, self.type = name, type


class FakeQueue:
    """kombu's Queue, duck-typed."""

    def __init__(
        self, name: str, exchange: Any = None, routing_key: str = "", queue_arguments: Any = None
    ) -> None:
        self.name, self.exchange, self.routing_key = name, exchange, routing_key
        self.queue_arguments = queue_arguments
        self.durable, self.auto_delete, self.exclusive = True, False, False
        self.max_priority = None


def test_queue_types_follow_the_declarations() -> None:
    classic = Celery(
        set_as_current=False, broker="memory://", task_queues=[FakeQueue("celery"), FakeQueue("a")]
    )
    assert hare_settings(classic.conf)["queue_type"] == "classic"
    quorum = Celery(
        set_as_current=False,
        broker="memory://",
        task_default_queue="a",
        task_queues=[FakeQueue("a", queue_arguments={"x-queue-type": "quorum"})],
    )
    assert hare_settings(quorum.conf)["queue_type"] == "quorum"
    mixed = Celery(
        set_as_current=False,
        broker="memory://",
        task_queues=[
            FakeQueue("celery"),
            FakeQueue("q", queue_arguments={"x-queue-type": "quorum"}),
        ],
    )
    with pytest.raises(NotSupportedError, match="celery: classic, q: quorum"):
        hare_settings(mixed.conf)


@pytest.mark.parametrize(
    ("queue", "named"),
    [
        (FakeQueue("p", queue_arguments={"x-max-priority": 10}), r"arguments \['x-max-priority'\]"),
        (FakeQueue("t", exchange=FakeExchange("tx", "topic")), "a topic exchange"),
        (FakeQueue("s", queue_arguments={"x-queue-type": "stream"}), "x-queue-type 'stream'"),
    ],
)
def test_queue_declarations_hare_cannot_make_are_refused(queue: FakeQueue, named: str) -> None:
    app = Celery(set_as_current=False, broker="memory://", task_queues=[queue])
    with pytest.raises(NotSupportedError, match=named):
        hare_settings(app.conf)


def test_celery3_queue_dicts_are_read() -> None:
    app = Celery(set_as_current=False, broker="memory://")
    app.config_from_object(
        {"BROKER_URL": "memory://", "CELERY_QUEUES": {"a": {"exchange": "a", "routing_key": "a"}}}
    )
    assert app.worker_options()["queues"] == ["a"]


def test_worker_concurrency_is_a_number_or_auto_as_in_celery_5_7() -> None:
    def concurrency(value: object) -> object:
        app = Celery(set_as_current=False, broker="memory://", worker_concurrency=value)
        return app.worker_options().get("concurrency")

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert concurrency("auto") == concurrency(" AUTO ") == cpus
    assert (concurrency(8), concurrency("4"), concurrency(None), concurrency(0)) == (
        8,
        4,
        None,
        None,
    )
    with pytest.raises(ConfigurationError, match="worker_concurrency='lots'"):
        concurrency("lots")
