"""Mutual TLS for the gRPC ports of the local stack's ``weed mini``.

Without it, weed's gRPC ports accept any client: the filer's
``CreateEntry`` writes an object into the bucket with no credential at all
(the JWT keys of ``security.toml`` guard the HTTP APIs only). So at each
start the stack makes a throw-away certificate authority and one
certificate (``serverAuth`` + ``clientAuth``, 127.0.0.1) that every weed
component presents and requires (weed does not check host names, so one
certificate serves all), under ``seaweedfs/tls/`` (keys 0600). Nobody but
the weed process reads them; the CA key is deleted once the certificate is
signed, so not even the stack can issue another.

Made with the ``openssl`` command (Debian's ``openssl`` package, present on
nearly every machine); where it is missing :func:`write_grpc_tls` returns
``None`` and the stack starts without gRPC mTLS, saying so in its log.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("facegate.tools.devstack")

COMPONENTS = ("master", "volume", "filer", "s3", "admin", "msg_broker", "msg_agent", "worker",
              "mq")  # fmt: skip
"""The ``[grpc.<component>]`` sections of weed 4.48's security.toml."""

_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def write_grpc_tls(work: Path) -> str | None:
    """Fresh CA + certificate in ``work/tls``; the ``security.toml`` text
    that turns gRPC mTLS on, or ``None`` without ``openssl``."""
    if shutil.which("openssl") is None:
        log.warning("openssl not found: weed's gRPC ports run without mutual TLS")
        return None
    tls = work / "tls"
    shutil.rmtree(tls, ignore_errors=True)
    tls.mkdir(mode=0o700, parents=True)
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    try:
        _openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt",
                 "-days", "30", "-subj", "/CN=facegate-local-weed-ca", cwd=tls)  # fmt: skip
        _openssl("req", *curve, "-keyout", "weed.key", "-out", "weed.csr",
                 "-subj", "/CN=facegate-local-weed", cwd=tls)  # fmt: skip
        (tls / "ext.cnf").write_text(_EXTENSIONS)
        _openssl("x509", "-req", "-in", "weed.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "weed.crt", "-days", "30",
                 "-extfile", "ext.cnf", cwd=tls)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log.warning("could not make weed's gRPC certificates (%s): no mutual TLS", exc)
        return None
    for name in ("ca.key", "weed.csr", "ca.srl", "ext.cnf"):
        (tls / name).unlink(missing_ok=True)
    for name in ("weed.key", "weed.crt", "ca.crt"):
        os.chmod(tls / name, 0o600)
    cert, key = tls / "weed.crt", tls / "weed.key"
    lines = [f'[grpc]\nca = "{tls / "ca.crt"}"\n']
    lines += [f'[grpc.{c}]\ncert = "{cert}"\nkey = "{key}"\n' for c in COMPONENTS]
    lines.append(f'[grpc.client]\ncert = "{cert}"\nkey = "{key}"\n')
    return "".join(lines)


__all__ = ["COMPONENTS", "write_grpc_tls"]
