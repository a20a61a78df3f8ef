from hare import Hare

app = Hare("typing", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="emails")
async def send_email(to: str, subject: str) -> None: ...


async def calls() -> None:
    add.delay("x", 1)  # E1: str where int is expected
    add.delay(1)  # E2: missing argument
    await send_email.adelay("a@b.c", subjekt="hi")  # E3: unknown keyword
    text: str = add(1, 2)  # E4: int is not str


# hare_compat: Celery's decorators carry the function's parameters too.
from hare_compat import Celery, Task, shared_task  # noqa: E402

capp = Celery("typing")


@capp.task
def cadd(x: int, y: int) -> int:
    return x + y


@capp.task(bind=True, max_retries=3)
def bound(self: Task, x: int) -> int:
    return x


@shared_task
def sadd(x: int, y: int) -> int:
    return x + y


async def celery_calls() -> None:
    cadd.delay("x", 1)  # E5: str where int is expected
    bound.delay(1, 2)  # E6: the bound task takes x only
    sadd.delay(1)  # E7: missing argument
    await cadd.adelay(1, z=2)  # E8: unknown keyword
    text: str = cadd(1, 2)  # E9: int is not str
