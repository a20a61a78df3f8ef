"""Celery's remote control ("pidbox") and task revocation.

* `client`: `Control`, broadcast commands and gather replies (`inspect`, `revoke`, ...);
* `server`: `ControlServer`, a worker's answers;
* `pidbox` (pure): the wire format of commands and replies;
* `revocation` (pure): revocation records and `RevokedSet`;
* `revocation_stream`: reads and publishes revocations on the `hare.revoked.v1` stream.
"""
