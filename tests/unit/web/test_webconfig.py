"""The exporter-toolkit web config file (web/webconfig.py): basic auth and every refusal."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from opta_exporter.config import ConfigError
from opta_exporter.web.webconfig import BasicAuth, load_web_config
from tests.helpers import S3CRET_HASH


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_accepts_only_the_right_pair() -> None:
    auth = BasicAuth({"prom": S3CRET_HASH.encode()})
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
