"""Message size limits on a real RabbitMQ: hare's own check, and the broker's refusal mapped.

RabbitMQ 4.x refuses a body over its `max_message_size` (16 MiB by default; 3.x: 128 MiB) by
closing the channel with 406. hare refuses first, by its `max_message_size` setting; raised
above the broker's limit, the broker's refusal surfaces as the same `MessageTooLarge`, and the
next publish goes through on a new channel.
"""

from __future__ import annotations

import pytest

from hare.errors import MessageTooLarge
from tests.amqp.helpers import amqp_app, broker_version, delete_queues

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

MIB = 1024 * 1024


async def test_too_large_is_refused_by_hare_and_by_the_broker(amqp_url: str, unique: str) -> None:
    queue = f"size-{unique}"
    app = amqp_app(amqp_url, default_queue=queue, max_message_size=40 * MIB)

    @app.task(name="t.blob")
    async def blob(data: str) -> None: ...

    transport = (await app.publisher()).transport
    try:
        with pytest.raises(MessageTooLarge, match="max_message_size, 41943040 bytes"):
            await blob.adelay("x" * (41 * MIB))  # hare's own check: nothing sent
        if await broker_version(amqp_url) >= (4,):
            with pytest.raises(MessageTooLarge, match="larger than configured max size"):
                await blob.adelay("x" * (20 * MIB))  # over 4.x's 16 MiB: the broker refuses
            expected = 1
        else:
            await blob.adelay("x" * (20 * MIB))  # 3.x takes up to 128 MiB
            expected = 2
        await blob.adelay("small")  # the publish channel works again
        assert await transport.message_count(queue) == expected
    finally:
        await delete_queues(transport, queue, queue + ".dead")
        await app.aclose()
