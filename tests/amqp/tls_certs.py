"""A throwaway PKI for the TLS tests, made with the `openssl` command (no Python dependency).

`make_pki(folder)` writes, all with P-256 keys:

- ``ca.pem``: the test CA, which signs everything below, and ``other-ca.pem``: an unrelated CA
  (a client that trusts only it must refuse the broker);
- ``server.pem``/``server.key``: the broker, valid now, for IP 127.0.0.1 and DNS localhost;
- ``expired-server.pem``/``expired-server.key``: the broker for DNS localhost, expired in 2020
  (the test broker serves it to clients that ask for "localhost" by SNI);
- ``client.pem``/``client.key``: a client certificate, valid now;
- ``expired-client.pem``/``expired-client.key``: a client certificate expired in 2020.

Dates are set with `openssl ca -startdate/-enddate`, so "expired" is a fact of the
certificate and not of a clock the test moves.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ("Pki", "make_pki")

_CA_CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {folder}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none

[anything]
commonName = supplied

[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {server_names}

[expired_server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost

[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
"""

_NOW = ("20000101000000Z", "20991231000000Z")  # valid on any clock this century
_PAST = ("20190101000000Z", "20200101000000Z")


@dataclass(frozen=True)
class Pki:
    folder: Path

    def __getattr__(self, name: str) -> str:
        """`pki.server_pem` is the path of server.pem, `pki.other_ca_pem` of other-ca.pem."""
        stem, _, ext = name.rpartition("_")
        path = self.folder / f"{stem.replace('_', '-')}.{ext}"
        if not path.is_file():
            raise AttributeError(name)
        return str(path)


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.strip()}")


def _self_signed_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "3650",
        "-subj", f"/CN=hare test {name}",
        "-addext", "basicConstraints=critical,CA:true",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def _issue(folder: Path, name: str, extensions: str, dates: tuple[str, str]) -> None:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "ca", "-batch", "-config", "ca.cnf", "-extensions", extensions,
        "-cert", "ca.pem", "-keyfile", "ca.key", "-in", f"{name}.csr", "-out", f"{name}.pem",
        "-startdate", dates[0], "-enddate", dates[1], "-notext",
        cwd=folder,
    )  # fmt: skip
    (folder / f"{name}.csr").unlink()


def make_pki(folder: Path) -> Pki:
    """Write the CAs and certificates above into `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issued").mkdir(exist_ok=True)
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    config = _CA_CONFIG.format(folder=folder, server_names="IP:127.0.0.1, DNS:localhost")
    (folder / "ca.cnf").write_text(config)
    _self_signed_ca(folder, "ca")
    _self_signed_ca(folder, "other-ca")
    _issue(folder, "server", "server", _NOW)
    _issue(folder, "expired-server", "expired_server", _PAST)
    _issue(folder, "client", "client", _NOW)
    _issue(folder, "expired-client", "client", _PAST)
    return Pki(folder)
