"""TLS as production brokers run it (issue 19, item 5), on a RabbitMQ node of its own.

The module starts one node (scripts/rabbitmq/tls-node.sh: the host's RabbitMQ on a plain
and a TLS port) with a CA the test makes (tests/amqp/tls_certs.py). Its TLS listener asks for
client certificates and checks them (verify_peer), and serves an expired certificate to
clients that ask for "localhost" by SNI, so one node gives both a good and an expired broker
certificate. Over it: a hare app and a hare_compat (Celery-style `broker_use_ssl`) app publish
and consume; a wrong CA, an expired certificate on either side, plain AMQP on the TLS port and
TLS on the plain port each fail at once with a `BrokerTLSError` that names the cause; and
`hare worker` keeps the password out of its log, and exits 3 naming a TLS failure at start.

The node runs once per test run: the RabbitMQ 4.0 rerun of tests/amqp (which sets
HARE_TEST_BROKER_VERSION_TIER=4.0) skips this module.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from hare import Hare
from hare.cli.common import EXIT_BROKER
from hare.core.topology import DEAD_SUFFIX
from hare.errors import BrokerTLSError
from hare.testing import Ledger, eventually, running_worker
from tests.amqp.helpers import WorkerProcess, delete_queues
from tests.amqp.tls_certs import Pki, make_pki

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "rabbitmq" / "tls-node.sh"
PLAIN_PORT, TLS_PORT = 5694, 5695
USER, PASSWORD = "hare-tls", "Tls-s3cret-pw-7d1f"  # the node's only user
#: Two test runs at once (two checkouts) take turns with the node.
LOCK = Path("/var/lib/rabbitmq-hare/rabbit310tls.lock")
#: A bound for calls that must fail at once; the apps' own timeouts are far longer.
AT_ONCE = 20.0
LONG = 60.0  # under pytest-timeout's 120 s: a stuck call fails with its own traceback


@dataclass(frozen=True)
class TlsNode:
    pki: Pki

    def url(
        self, *, host: str = "127.0.0.1", port: int = TLS_PORT, scheme: str = "amqps", **query: str
    ) -> str:
        tail = f"?{urlencode(query)}" if query else ""
        return f"{scheme}://{USER}:{PASSWORD}@{host}:{port}/{tail}"

    def client_url(self) -> str:
        """amqps with the CA and a valid client certificate."""
        pki = self.pki
        return self.url(cafile=pki.ca_pem, certfile=pki.client_pem, keyfile=pki.client_key)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the TLS node cannot run: {why} -- under CI that is a failure")
    pytest.skip(f"the TLS node cannot run: {why}")


def _take_turn() -> int:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.fail(f"another test run held {LOCK} for 10 minutes")
            time.sleep(1)


#: The node's only user, made with it (a fresh node's database; in place of guest).
USER_CONF = "\n".join(
    (
        f"default_user = {USER}",
        f"default_pass = {PASSWORD}",
        "default_user_tags.administrator = true",
    )
)


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RMQTLS_EXTRA_CONF": USER_CONF}
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    if os.environ.get("HARE_TEST_BROKER_VERSION_TIER") == "4.0":
        pytest.skip("the TLS node runs its own RabbitMQ once, in the first pass of tests/amqp")
    if os.geteuid() != 0:
        _unavailable("starting a RabbitMQ node needs root")
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    certs = tmp_path_factory.mktemp("node-certs")
    for name in ("ca.pem", "server.pem", "server.key"):
        shutil.copy(pki.folder / name, certs / name)
    shutil.copy(pki.expired_server_pem, certs / "sni-localhost.pem")
    shutil.copy(pki.expired_server_key, certs / "sni-localhost.key")
    turn = _take_turn()
    try:
        _node("reset")  # a fresh database, made with USER_CONF's user
        started = _node("start", str(certs))
        if started.returncode != 0:
            pytest.fail(f"tls-node.sh start failed:\n{started.stdout}{started.stderr}")
        yield TlsNode(pki)
    finally:
        stopped = _node("reset")  # stop it and delete its data
        os.close(turn)
    if stopped.returncode != 0:
        raise RuntimeError(f"tls-node.sh reset failed:\n{stopped.stdout}{stopped.stderr}")


def _app(url: str, queue: str, **settings: Any) -> Hare:
    return Hare("tls", broker=url, default_queue=queue, environ={}, **settings)


async def _cleanup(app: Hare, queue: str) -> None:
    try:
        transport = (await app.publisher()).transport
        await delete_queues(transport, queue, queue + DEAD_SUFFIX)
    finally:
        await app.aclose()


async def test_a_hare_app_publishes_and_consumes_over_tls_with_a_client_certificate(
    tls_node: TlsNode, unique: str
) -> None:
    queue = f"tls-{unique}"
    app = _app(tls_node.client_url(), queue, result_backend="rpc://", connect_timeout=10)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="tls.add")
    def add(x: int, y: int) -> int:
        ledger.record("add", (x, y))
        return x + y

    try:
        async with asyncio.timeout(LONG), running_worker(app, queues=[queue]):
            result = await add.adelay(2, 3)
            assert await result.aget(timeout=LONG) == 5
        assert ledger.runs == [("add", (2, 3))]
    finally:
        await _cleanup(app, queue)


async def test_a_celery_style_app_with_broker_use_ssl_publishes_and_consumes(
    tls_node: TlsNode, unique: str
) -> None:
    from hare_compat import Celery

    queue = f"tls-compat-{unique}"
    celery = Celery(
        "tls-compat",
        broker=tls_node.url(scheme="amqp"),  # broker_use_ssl makes it amqps, as in Celery
        backend="rpc://",
        set_as_current=False,
    )
    celery.conf.task_default_queue = queue
    celery.conf.broker_use_ssl = {
        "ca_certs": tls_node.pki.ca_pem,
        "certfile": tls_node.pki.client_pem,
        "keyfile": tls_node.pki.client_key,
        "cert_reqs": ssl.CERT_REQUIRED,
    }

    @celery.task(name="tls.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    app = celery.__hare_app__()
    assert app.settings.broker_url.startswith(f"amqps://{USER}:")
    try:
        async with asyncio.timeout(LONG), running_worker(app, queues=[queue]):
            result = await asyncio.to_thread(mul.delay, 6, 7)
            assert await asyncio.to_thread(result.get, timeout=LONG) == 42
    finally:
        await _cleanup(app, queue)


def _failures(node: TlsNode) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each misconfiguration: its URL, and the words its error must contain."""
    pki = node.pki
    return {
        "wrong CA": (
            node.url(cafile=pki.other_ca_pem),
            ("127.0.0.1:5695: TLS: certificate verify failed", "wrong CA?", pki.other_ca_pem),
        ),
        "expired broker certificate": (
            node.url(host="localhost", cafile=pki.ca_pem),
            ("localhost:5695: TLS: the broker's certificate has expired",),
        ),
        "expired client certificate": (
            node.url(
                cafile=pki.ca_pem, certfile=pki.expired_client_pem, keyfile=pki.expired_client_key
            ),
            ("TLS: the broker refused the client certificate: it has expired",),
        ),
        "client certificate of an unknown CA": (
            node.url(cafile=pki.ca_pem, certfile=pki.other_ca_pem, keyfile=pki.other_ca_key),
            ("TLS: the broker refused the client certificate",),
        ),
        "plain AMQP to the TLS port": (
            node.url(scheme="amqp"),
            ("127.0.0.1:5695: TLS: the port speaks TLS: plain AMQP was sent to a TLS port",),
        ),
        "TLS to the plain port": (
            node.url(port=PLAIN_PORT, cafile=pki.ca_pem),
            ("127.0.0.1:5694: TLS: the port answered, but not with TLS",),
        ),
        "missing cafile": (
            node.url(cafile=str(pki.folder / "no-such-ca.pem")),
            ("TLS: cannot read cafile", "no-such-ca.pem: no such file"),
        ),
    }


FAILURES = (
    "wrong CA",
    "expired broker certificate",
    "expired client certificate",
    "client certificate of an unknown CA",
    "plain AMQP to the TLS port",
    "TLS to the plain port",
    "missing cafile",
)


@pytest.mark.parametrize("case", FAILURES)
async def test_a_tls_misconfiguration_fails_a_publish_at_once_naming_it(
    tls_node: TlsNode, unique: str, case: str
) -> None:
    """A publish reconnects through outages for up to `publish_timeout`: not through this."""
    url, words = _failures(tls_node)[case]
    app = _app(url, f"tls-{unique}", connect_timeout=60, publish_timeout=60)
    try:
        with pytest.raises(BrokerTLSError) as caught:
            await asyncio.wait_for(app.asend_task("tls.never", (1,)), AT_ONCE)
    finally:
        await app.aclose()
    message = str(caught.value)
    for word in words:
        assert word in message
    assert PASSWORD not in message
    assert "no broker within" not in message


WORKER_APP = """
import os
from pathlib import Path

from hare import Hare

app = Hare("tlsworker", default_queue=os.environ["TLS_QUEUE"])


@app.task(name="tls.touch")
def touch(path: str) -> None:
    Path(path).write_text("ran")
"""


def _worker(tmp_path: Path, url: str, queue: str) -> WorkerProcess:
    (tmp_path / "tlsworker.py").write_text(textwrap.dedent(WORKER_APP))
    env = {**os.environ, "HARE_BROKER_URL": url, "TLS_QUEUE": queue, "PYTHONPATH": str(tmp_path)}
    return WorkerProcess("tlsworker:app", "-c", "2", "-l", "debug", env=env, cwd=tmp_path)


def _secrets(node: TlsNode) -> list[str]:
    """What must never be logged: the password and the client key's contents."""
    key_lines = [
        line for line in Path(node.pki.client_key).read_text().splitlines() if "-----" not in line
    ]
    return [PASSWORD, *key_lines]


async def test_hare_worker_over_tls_logs_the_masked_url_and_no_secret(
    tls_node: TlsNode, unique: str, tmp_path: Path
) -> None:
    queue = f"tls-cli-{unique}"
    url = tls_node.client_url()
    worker = _worker(tmp_path, url, queue)
    producer = _app(url, queue)
    try:
        line = await worker.wait_for("connected to", within=LONG)
        assert f"amqps://{USER}:***@127.0.0.1:5695/?cafile=" in line
        marker = tmp_path / "ran"
        await producer.asend_task("tls.touch", (str(marker),))
        await eventually(marker.exists, within=LONG)
    finally:
        code = await asyncio.to_thread(worker.stop)
        await _cleanup(producer, queue)
    assert code == 0
    log = "".join(worker.lines)
    for secret in _secrets(tls_node):
        assert secret not in log


@pytest.mark.parametrize("case", ["wrong CA", "expired client certificate"])
async def test_hare_worker_exits_3_at_start_on_a_tls_failure_naming_it(
    tls_node: TlsNode, unique: str, tmp_path: Path, case: str
) -> None:
    """A broker that is not up yet is waited for; a TLS misconfiguration is not: waiting
    cannot mend it, so the worker says what is wrong and exits (no --no-startup-retry). The
    worker runs on uvloop when it is installed (`--loop auto`), whose TLS is not asyncio's."""
    url, words = _failures(tls_node)[case]
    worker = _worker(tmp_path, url, f"tls-cli-{unique}")
    code = await asyncio.to_thread(worker.process.wait, LONG)
    worker.stop()
    log = "".join(worker.lines)
    assert code == EXIT_BROKER, log
    assert "hare: cannot connect to the broker: 127.0.0.1:5695: TLS: " in log
    for word in words:
        assert word in log
    assert "broker unavailable, retrying" not in log
    for secret in _secrets(tls_node):
        assert secret not in log


def test_the_certificates_are_what_the_tests_say(tls_node: TlsNode) -> None:
    """The failures above are the certificates' own: checked with openssl, not with hare."""
    pki = tls_node.pki

    def verify(cert: str, ca: str) -> str:
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", ca, cert], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr

    assert ": OK" in verify(pki.server_pem, pki.ca_pem)
    assert ": OK" in verify(pki.client_pem, pki.ca_pem)
    assert "certificate has expired" in verify(pki.expired_server_pem, pki.ca_pem)
    assert "certificate has expired" in verify(pki.expired_client_pem, pki.ca_pem)
    assert ": OK" not in verify(pki.server_pem, pki.other_ca_pem)
