"""Run Metaflow's real Argo compiler (`argo-workflows create --only-json`) against Azurite over HTTPS.

Metaflow's Azure datastore authenticates only through ``DefaultAzureCredential`` and the compiler
uploads the code package, so Azurite runs with TLS (a trustme CA) and ``--oauth basic``, which
checks a bearer token's issuer, audience and lifetime but not its signature. The credential chain is
narrowed to ``AzureCliCredential`` and a stub ``az`` on ``PATH`` prints an unsigned token.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite

METAFLOW_CONTAINER = "metaflow"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned_token(lifetime: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": "00000000-0000-0000-0000-000000000000",
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


def write_stub_az(bin_dir: Path) -> None:
    """An ``az`` that answers ``account get-access-token`` like the Azure CLI does."""
    expires = int(time.time()) + 3600
    reply = {
        "accessToken": unsigned_token(),
        "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires)),
        "expires_on": expires,
        "subscription": "00000000-0000-0000-0000-000000000002",
        "tenant": "00000000-0000-0000-0000-000000000000",
        "tokenType": "Bearer",
    }
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(reply))})\n")
    az.chmod(az.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@contextmanager
def https_azurite(workdir: Path) -> Iterator[tuple[Azurite, Path]]:
    """Azurite over HTTPS with ``--oauth basic``; yields it and the CA bundle path."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = workdir / "cert.pem", workdir / "key.pem", workdir / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    with Azurite(cert=cert_path, key=key_path, oauth_basic=True) as emulator:
        service = BlobServiceClient.from_connection_string(emulator.connection_string, connection_verify=str(ca_path))
        service.create_container(METAFLOW_CONTAINER)
        yield emulator, ca_path


def compiler_env(emulator: Azurite, ca_path: Path, workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment for the compiler: Azure datastore on Azurite, stub ``az``, isolated Metaflow home."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    write_stub_az(bin_dir)
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "SENSOR_", "AZURE_"))}
    return {
        **keep,
        "HOME": str(home),
        "METAFLOW_HOME": str(home / ".metaflowconfig"),
        "USERNAME": "tester",
        "METAFLOW_USER": "tester",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "METAFLOW_DEFAULT_DATASTORE": "azure",
        "METAFLOW_DATASTORE_SYSROOT_AZURE": f"{METAFLOW_CONTAINER}/flows",
        "METAFLOW_AZURE_STORAGE_BLOB_SERVICE_ENDPOINT": emulator.blob_endpoint,
        "METAFLOW_KUBERNETES_NAMESPACE": "argo",
        "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        "REQUESTS_CA_BUNDLE": str(ca_path),
        "SSL_CERT_FILE": str(ca_path),
        **extra,
    }


def compile_template(flow_file: Path, env: dict[str, str], cwd: Path, *top_level: str) -> dict:
    """Run ``python FLOW [top_level...] argo-workflows create --only-json``; return the template JSON."""
    proc = subprocess.run(
        [sys.executable, str(flow_file), *top_level, "argo-workflows", "create", "--only-json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise AssertionError(f"compiler failed ({proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}")
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start:])
