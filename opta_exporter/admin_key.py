"""The LMX admin key: from a file, the environment or a systemd credential, never argv
(visible in ps), checked to be sendable in the X-Admin-Key header. An error says what is
wrong and where, never the key.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from pathlib import Path

ADMIN_KEY_ENV = "OPTA_LMX_ADMIN_KEY"
CREDENTIAL_NAME = "admin-key"


def _sendable_key(key: str, source: str) -> str:
    """The key travels as the X-Admin-Key header: http.client encodes it in Latin-1 and
    refuses line breaks, so an unsendable key would fail every read of LMX, forever. Refuse
    it here with what is wrong, never the key itself."""
    for char in key:
        if char in "\r\n":
            problem = "a line break"
        elif unicodedata.category(char) == "Cc":
            problem = "a control character"
        elif ord(char) > 0xFF:
            problem = "a character outside Latin-1"
        else:
            continue
        raise ValueError(
            f"the admin key in {source} holds {problem}, which cannot be sent in the "
            "X-Admin-Key header"
        )
    return key


def _read_key(path: str) -> str:
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # its text would hold the bytes, i.e. part of the key
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not key:
        raise ValueError(f"{path} is empty")
    return _sendable_key(key, path)


def admin_key(key_file: str | None, env: Mapping[str, str]) -> str | None:
    """File flag, then the env var, then a systemd credential: never argv (visible in ps)."""
    if key_file:
        return _read_key(key_file)
    if env.get(ADMIN_KEY_ENV, "").strip():
        return _sendable_key(env[ADMIN_KEY_ENV].strip(), ADMIN_KEY_ENV)
    creds = env.get("CREDENTIALS_DIRECTORY")
    path = Path(creds) / CREDENTIAL_NAME if creds else None
    if path is not None and path.is_file():
        # The unit always loads the credential; an empty one is how "no key" is said.
        return _read_key(str(path)) if path.stat().st_size else None
    return None
