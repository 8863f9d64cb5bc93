"""TLS and basic auth from the web config file, on a real scrape of an exporter against the
simulator."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from opta_exporter.web.webconfig import load_web_config
from tests.conftest import WAIT
from tests.helpers import S3CRET_HASH


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
        f"basic_auth_users:\n  prom: '{S3CRET_HASH}'\n"
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
