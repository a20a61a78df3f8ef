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
