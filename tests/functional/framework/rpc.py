"""An RPC proxy for functional tests (Core: test_framework/authproxy.py, util.assert_raises_rpc_error)."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any


class JSONRPCException(Exception):  # noqa: N818 - the name Core's framework uses
    def __init__(self, error: dict[str, Any], status: int) -> None:
        super().__init__(f"{error.get('message')} ({error.get('code')})")
        self.error = error
        self.status = status


class RPCProxy:
    """Calls `proxy.method(*args)` or `proxy.method(**named)` over one keep-alive connection."""

    def __init__(self, port: int, userpass: str, timeout: float = 60.0) -> None:
        self.port = port
        self.auth = "Basic " + base64.b64encode(userpass.encode()).decode()
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def from_cookie(cls, cookie: Path, port: int) -> RPCProxy:
        return cls(port, cookie.read_text().strip())

    def post(self, body: bytes | str, headers: dict[str, str] | None = None,
             method: str = "POST", path: str = "/") -> tuple[int, bytes]:
        """One raw HTTP request; returns (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            all_headers = {"Authorization": self.auth, "Content-Type": "application/json"}
            all_headers.update(headers or {})
            conn.request(method, path, body.encode() if isinstance(body, str) else body, all_headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def call(self, method: str, params: Any) -> Any:
        status, body = self.post(json.dumps({"id": 1, "method": method, "params": params}))
        reply = json.loads(body, parse_float=Decimal)
        if reply["error"] is not None:
            raise JSONRPCException(reply["error"], status)
        assert status == 200
        return reply["result"]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args: Any, **named: Any) -> Any:
            return self.call(name, named if named else list(args))
        return method


def assert_raises_rpc_error(code: int, message: str | None, fn: Callable[..., Any], *args: Any,
                            **kwargs: Any) -> JSONRPCException:
    try:
        fn(*args, **kwargs)
    except JSONRPCException as exc:
        assert exc.error["code"] == code, f"expected code {code}, got {exc.error}"
        if message is not None:
            assert message in exc.error["message"], f"expected {message!r} in {exc.error['message']!r}"
        return exc
    raise AssertionError("no RPC error raised")
