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
