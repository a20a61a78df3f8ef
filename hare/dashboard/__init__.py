"""`hare dashboard APP`: a web page for operators: queues, workers, recent tasks, dead letters
(replay, purge), the delay ladder and the periodic schedules, updated live.

* `security`: the bind rule, the token, the cookies (no web framework);
* `ring` (pure) and `feed`: recent tasks from Celery's task events (`celeryev`);
* `broker` and `backlog`: what the pages show, read as the CLI reads it (`hare.cli`,
  `hare.dlq`, `hare.control`);
* `site`, `pages`, `actions`, `web`: the Starlette app, its Jinja2 templates (`templates/`)
  and its static files (`static/`: htmx and a stylesheet, served by the dashboard itself);
* `serve`: running it with uvicorn.

Starlette, Jinja2 and uvicorn (the `dashboard` extra) are imported here only, and only when the
dashboard runs; the `hare` command loads them on `hare dashboard` alone. docs/dashboard.md.
"""
