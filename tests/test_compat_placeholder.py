"""Until hare_compat exists, its names fail loudly and clearly, never half-work."""

from __future__ import annotations

import pytest

from hare.errors import NotSupportedError


def test_celery_names_raise_a_named_error() -> None:
    with pytest.raises(NotSupportedError, match="hare_compat.Celery is not supported"):
        from hare_compat import Celery  # noqa: F401
