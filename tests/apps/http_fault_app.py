"""The app of the HTTP push fault tests (tests/faults/test_http_faults.py): it defines no
task of its own and delivers one-off pushes (`app.http` registers `hare.http.push`)."""

from __future__ import annotations

from hare import Hare

app = Hare("http-fault")
app.http  # noqa: B018 - registers the push task
