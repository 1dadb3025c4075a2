"""RPC authentication: the cookie file, -rpcuser/-rpcpassword and -rpcauth (Core: httprpc.cpp,
rpc/protocol.cpp GenerateAuthCookie, share/rpcauth/rpcauth.py).

Owns creating and deleting `.cookie` (mode 0600, fresh per start), checking an HTTP Basic
Authorization header in constant time, and the salted HMAC-SHA256 of -rpcauth. It must never log a
secret, and never return early on a partial match.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

COOKIE_USER = "__cookie__"
COOKIE_FILENAME = ".cookie"
COOKIE_SIZE = 32


class AuthConfigError(ValueError):
    """An -rpcauth entry or cookie path that cannot be used."""


def generate_cookie(path: Path) -> str:
    """Write `__cookie__:<64 hex>` through a temporary file, readable by the owner only."""
    cookie = f"{COOKIE_USER}:{secrets.token_hex(COOKIE_SIZE)}"
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, cookie.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return cookie


def read_cookie(path: Path) -> str | None:
    """Core: GetAuthCookie, the first line of the cookie file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.splitlines()[0] if text else ""


def delete_cookie(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def rpcauth_hmac(salt: str, password: str) -> str:
    """share/rpcauth: hex(HMAC-SHA256(key=salt, msg=password))."""
    return hmac.new(salt.encode(), password.encode(), hashlib.sha256).hexdigest()


def make_rpcauth(user: str, password: str, salt: str | None = None) -> str:
    """The `-rpcauth=<user>:<salt>$<hash>` line for a user and password (share/rpcauth/rpcauth.py)."""
    salt = salt if salt is not None else secrets.token_hex(16)
    return f"{user}:{salt}${rpcauth_hmac(salt, password)}"


@dataclass(frozen=True, slots=True)
class RPCAuthEntry:
    user: str
    salt: str
    hash_hex: str


def parse_rpcauth(entries: list[str]) -> list[RPCAuthEntry]:
    """Core splits each entry on ':' and '$' and skips any without exactly three fields."""
    parsed: list[RPCAuthEntry] = []
    for entry in entries:
        fields = entry.replace("$", ":").split(":")
        if len(fields) != 3:
            continue
        parsed.append(RPCAuthEntry(fields[0], fields[1], fields[2]))
    return parsed


class Authenticator:
    """Checks `Authorization: Basic ...` against the single user:password (cookie or -rpcuser) and the
    -rpcauth users; every comparison is constant-time."""

    def __init__(self, user_colon_pass: str, rpcauth: list[RPCAuthEntry]) -> None:
        self._userpass = user_colon_pass.encode()
        self._rpcauth = rpcauth
        # The exact header a client sends for the single user: most requests match it directly.
        token = base64.b64encode(self._userpass).decode()
        self._expected_header = f"Basic {token}".encode()

    def check(self, header: str | None) -> str | None:
        """The user name when `header` authorizes, else None (Core: RPCAuthorized)."""
        if not header or not self._userpass:
            return None
        raw = header.encode("utf-8", "replace")
        if hmac.compare_digest(raw, self._expected_header):
            return self._userpass.split(b":", 1)[0].decode()
        if not raw.startswith(b"Basic "):
            return None
        try:
            userpass = base64.b64decode(raw[6:].strip(), validate=False)
        except (binascii.Error, ValueError):
            return None
        if hmac.compare_digest(userpass, self._userpass):
            return userpass.split(b":", 1)[0].decode("utf-8", "replace")
        return self._check_rpcauth(userpass)

    def _check_rpcauth(self, userpass: bytes) -> str | None:
        if b":" not in userpass:
            return None
        user_b, password_b = userpass.split(b":", 1)
        user = user_b.decode("utf-8", "replace")
        password = password_b.decode("utf-8", "replace")
        found: str | None = None
        for entry in self._rpcauth:
            if not hmac.compare_digest(entry.user.encode(), user_b):
                continue
            digest = rpcauth_hmac(entry.salt, password)
            if hmac.compare_digest(digest.encode(), entry.hash_hex.encode()):
                found = user
        return found
