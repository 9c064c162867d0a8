"""The Dockerfile and compose.yaml: settings come from the environment, name
only real settings, and the certificates deploy/make-certs.sh makes serve
mutual TLS, scoped identities and the container health check."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import grpc

from server.settings import Settings, env_name

from .support import clean_env, raises, require, socialgraph_command
from .test_auth import serving
from .test_tls import follow, secure_client, stats

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {env_name(f) for f in dataclasses.fields(Settings)}


def test_the_image_takes_its_settings_from_the_environment():
    dockerfile = (ROOT / "Dockerfile").read_text()
    [cmd] = re.findall(r"^CMD (.*)$", dockerfile, flags=re.M)
    assert json.loads(cmd) == ["serve"]  # a flag here would beat SOCIALGRAPH_LISTEN
    assert 'CMD ["socialgraph", "health"]' in dockerfile


def test_compose_and_dockerfile_name_only_real_settings():
    for path in ("compose.yaml", "Dockerfile"):
        names = set(re.findall(r"\bSOCIALGRAPH_[A-Z_]+", (ROOT / path).read_text()))
        assert names and names <= SETTINGS, (path, names - SETTINGS)


def compose_config(directory: Path) -> subprocess.CompletedProcess:
    """``docker-compose config`` validates a compose file against the Compose
    schema without a Docker engine (Debian's docker-compose, installed by
    scripts/services)."""
    require("docker-compose", shutil.which("docker-compose") is not None)
    return subprocess.run(
        ["docker-compose", "config", "--quiet"], cwd=directory, capture_output=True, text=True, timeout=60
    )


def test_the_compose_file_is_valid(tmp_path):
    checked = compose_config(ROOT)
    assert checked.returncode == 0, checked.stderr
    # The check can fail: a misspelt option is refused.
    misspelt = (ROOT / "compose.yaml").read_text().replace("    image: redis", "    imag: redis")
    (tmp_path / "compose.yaml").write_text(misspelt)
    refused = compose_config(tmp_path)
    assert refused.returncode != 0 and "imag" in refused.stderr


def test_the_compose_certificates_serve_mutual_tls_and_the_health_check(tmp_path):
    certs = tmp_path / "certs"
    subprocess.run(
        ["sh", str(ROOT / "deploy" / "make-certs.sh"), str(certs)], check=True, capture_output=True, timeout=60
    )
    compose = (ROOT / "compose.yaml").read_text()
    environment = dict(re.findall(r"^\s+(SOCIALGRAPH_TLS_[A-Z_]+): (\S+)$", compose, flags=re.M))
    files = {name: str(certs / Path(value).name) for name, value in environment.items() if value.startswith("/certs/")}
    settings = {name.removeprefix("SOCIALGRAPH_").lower(): value for name, value in files.items()}
    scopes = environment["SOCIALGRAPH_TLS_CLIENT_SCOPES"]
    with serving(tmp_path, tls_client_scopes=scopes, **settings) as (_, address):
        ca = (certs / "ca.pem").read_bytes()

        class Feed:
            cert, key = (certs / "feed.pem").read_bytes(), (certs / "feed-key.pem").read_bytes()

        with secure_client(address, ca, Feed) as client:
            assert follow(client).created
            with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
                stats(client)
        health = subprocess.run([*socialgraph_command(), "health"], capture_output=True, text=True, timeout=60,
                                env=clean_env(SOCIALGRAPH_LISTEN=address.replace("127.0.0.1", "0.0.0.0"), **files))
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
