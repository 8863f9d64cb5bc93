"""TLS and basic auth from the exporter-toolkit web config file."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.config import ConfigError
from opta_exporter.daemon import Exporter
from opta_exporter.web.webconfig import BasicAuth, load_web_config
from tests.conftest import WAIT

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_accepts_only_the_right_pair() -> None:
    auth = BasicAuth({"prom": HASH.encode()})
    assert auth.allows(basic("prom", "s3cret"))
    assert auth.allows(basic("prom", "s3cret"))  # cached: no second bcrypt
    assert not auth.allows(basic("prom", "wrong"))
    assert not auth.allows(basic("other", "s3cret"))
    assert not auth.allows(None)
    assert not auth.allows("Bearer abc")
    assert not auth.allows("Basic !!!not-base64")
    assert not auth.allows("Basic " + base64.b64encode(b"no-colon").decode())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("basic_auth_users: [1, 2]", "mapping"),
        ("basic_auth_users:\n  prom: plaintext", "bcrypt"),
        ("surprise: 1", "unknown keys"),
        ("tls_server_config:\n  cert_file: a.pem", "key_file"),
        ("tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem", "TLS"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher: x", "unknown"),
        ("{unclosed", "not YAML"),
    ],
)
def test_bad_web_config_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_web_config(str(path))


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(str(tmp_path / "absent.yml"))


def test_tls_and_basic_auth_scrape(
    tmp_path: Path,
    cert: tuple[Path, Path],
    sim: LmxSimulator,
    make_exporter: Callable[..., Exporter],
) -> None:
    cert_file, key_file = cert
    web_file = tmp_path / "web.yml"
    web_file.write_text(
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
        f"basic_auth_users:\n  prom: '{HASH}'\n"
    )
    web = load_web_config(str(web_file))
    exporter = make_exporter(sim, web=web)
    url = f"https://127.0.0.1:{exporter.server.port}/metrics"
    ok = requests.get(url, auth=("prom", "s3cret"), verify=str(cert_file), timeout=WAIT)
    assert ok.status_code == 200
    assert "opta_lmx_up" in ok.text
    assert requests.get(url, verify=str(cert_file), timeout=WAIT).status_code == 401
    wrong = requests.get(url, auth=("prom", "nope"), verify=str(cert_file), timeout=WAIT)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{exporter.server.port}/metrics", timeout=WAIT)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, auth=("prom", "s3cret"), timeout=WAIT)  # untrusted self-signed
    assert ssl.OPENSSL_VERSION
