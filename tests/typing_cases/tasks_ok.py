from hare import Hare, Sent

app = Hare("typing", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="emails")
async def send_email(to: str, subject: str) -> None: ...


async def calls() -> None:
    sent: Sent = add.delay(2, 3)
    await send_email.adelay("a@b.c", subject="hi")
    total: int = add(1, 2)
    print(sent.id, total)


# hare_compat: Celery's decorators, typed calls; class-based and apply_async stay open.
from typing import Any  # noqa: E402

from hare_compat import Celery, Task, shared_task  # noqa: E402

capp = Celery("typing")


@capp.task
def cadd(x: int, y: int) -> int:
    return x + y


@capp.task(bind=True, max_retries=3)
def bound(self: Task, x: int) -> int:
    return x


@capp.task(bind=True)
def loose(self: Any, *args: Any, key: str, **kwargs: Any) -> str:
    return key


@shared_task(name="typing.sadd")
def sadd(x: int, y: int) -> int:
    return x + y


async def celery_calls() -> None:
    cadd.delay(2, 3)
    bound.delay(1)
    loose.delay(1, 2, key="k")
    await sadd.adelay(1, 2)
    cadd.apply_async((2, 3), countdown=1)
    total: int = cadd(1, 2) + sadd(3, 4)
    print(total)
