"""Redis for the result tests: a URL that answers, and cleaning up only the keys a test wrote.

Like the broker tier: a missing Redis skips those tests locally with a clear message and fails
them under CI (`CI` set). Tests use their own database number (9 unless HARE_TEST_REDIS_URL
says otherwise) and unique ids, and delete only the keys holding their ids.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("HARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 2):
            return True
    except OSError:
        return False


def redis_url_or_skip() -> str:
    """The Redis URL for tests; skip (locally) or fail (under CI) when none answers."""
    if _redis_answers(REDIS_URL):
        return REDIS_URL
    message = f"no Redis answers at {REDIS_URL} (run scripts/test.sh, which starts one)"
    if os.environ.get("CI"):
        pytest.fail(message + " -- under CI a missing Redis is a failure")
    pytest.skip(message)


async def delete_keys_with(url: str, token: str) -> int:
    """Delete every key whose name contains `token` (the test's unique ids); how many."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{token}*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()
