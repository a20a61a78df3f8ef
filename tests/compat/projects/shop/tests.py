"""The shop's own test suite, Django style: run with `shop.testing_settings` (tasks run eagerly).

`SHOP_SETTINGS_MODULE=shop.testing_settings python -m unittest shop.tests`: no broker, no worker;
`.delay()` runs the task inline and returns an `EagerResult`.
"""

# mypy: disable-error-code="import-not-found,untyped-decorator"

import json
import os
import unittest
from typing import Any

from celery import chain, group
from celery.exceptions import Retry
from celery.result import EagerResult
from celery.signals import task_postrun, task_prerun

from shop.celery import app
from shop.tasks import add, audited, boom, flaky, mul, whoami


class EagerTasks(unittest.TestCase):
    def test_settings_ask_for_eager_mode(self) -> None:
        self.assertIs(app.conf.task_always_eager, True)
        self.assertIs(app.conf.task_eager_propagates, True)

    def test_delay_runs_inline_and_returns_an_eager_result(self) -> None:
        result = add.delay(2, 3)
        self.assertIsInstance(result, EagerResult)
        self.assertEqual(result.get(), 5)
        self.assertEqual(result.state, "SUCCESS")
        self.assertTrue(result.successful())
        self.assertTrue(result.ready())

    def test_apply_async_options_still_run_inline(self) -> None:
        result = mul.apply_async((6, 7), countdown=60, task_id="eager-id-1")
        self.assertEqual(result.id, "eager-id-1")
        self.assertEqual(result.get(), 42)

    def test_the_request_says_eager(self) -> None:
        seen = whoami.delay("k", 1, flag=True).get()
        self.assertIs(seen["is_eager"], True)
        self.assertEqual(seen["args"], ["k", 1])
        self.assertEqual(seen["kwargs"], {"flag": True})
        self.assertEqual(seen["retries"], 0)

    def test_failures_propagate_at_the_call(self) -> None:
        with self.assertRaisesRegex(ValueError, "boom eager"):
            boom.delay("eager")

    def test_without_propagation_the_result_holds_the_failure(self) -> None:
        result = boom.apply(("quiet",), throw=False)
        self.assertEqual(result.state, "FAILURE")
        self.assertIsInstance(result.result, ValueError)
        with self.assertRaises(ValueError):
            result.get()

    def test_chain_and_group_run_inline(self) -> None:
        self.assertEqual(chain(add.s(1, 2), add.s(3), mul.s(10)).delay().get(), 60)
        self.assertEqual(group(add.s(i, i) for i in range(4)).delay().get(), [0, 2, 4, 6])

    def test_hooks_and_signals_still_fire(self) -> None:
        seen: list[str] = []

        def prerun(sender: Any = None, **kwargs: Any) -> None:
            seen.append("prerun")

        def postrun(sender: Any = None, state: Any = None, **kwargs: Any) -> None:
            seen.append(f"postrun:{state}")

        task_prerun.connect(prerun)
        task_postrun.connect(postrun)
        try:
            self.assertEqual(audited.delay("ok").get(), "ok done")
        finally:
            task_prerun.disconnect(prerun)
            task_postrun.disconnect(postrun)
        self.assertEqual(seen, ["prerun", "postrun:SUCCESS"])

    def test_a_retry_propagates_as_retry(self) -> None:
        # With task_eager_propagates, the first attempt's self.retry() raises at the call.
        with self.assertRaises(Retry):
            flaky.delay("eager-retry-raises", 2, countdown=30)
        self.assertEqual(_attempts("eager-retry-raises"), [0])


def _attempts(key: str) -> list[int]:
    """The `retries` of each attempt of `key` the audit ledger saw."""
    path = os.environ.get("COMPAT_LEDGER")
    if not path or not os.path.exists(path):
        return []
    with open(path) as file:
        lines = [json.loads(line) for line in file]
    return [line["retries"] for line in lines if line.get("key") == key]


if __name__ == "__main__":
    unittest.main()
