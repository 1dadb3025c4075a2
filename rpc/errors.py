"""RPC error codes and the exception that carries them (Core: rpc/protocol.h RPCErrorCode).

Owns the numeric codes clients depend on. It must never format replies: rpc.protocol does that.
"""

from __future__ import annotations

from enum import IntEnum


class RPCErrorCode(IntEnum):
    # Standard JSON-RPC 2.0 errors.
    RPC_INVALID_REQUEST = -32600
    RPC_METHOD_NOT_FOUND = -32601
    RPC_INVALID_PARAMS = -32602
    RPC_INTERNAL_ERROR = -32603
    RPC_PARSE_ERROR = -32700
    # General application errors.
    RPC_MISC_ERROR = -1
    RPC_FORBIDDEN_BY_SAFE_MODE = -2
    RPC_TYPE_ERROR = -3
    RPC_INVALID_ADDRESS_OR_KEY = -5
    RPC_OUT_OF_MEMORY = -7
    RPC_INVALID_PARAMETER = -8
    RPC_DATABASE_ERROR = -20
    RPC_DESERIALIZATION_ERROR = -22
    RPC_VERIFY_ERROR = -25
    RPC_VERIFY_REJECTED = -26
    RPC_VERIFY_ALREADY_IN_CHAIN = -27
    RPC_IN_WARMUP = -28
    RPC_METHOD_DEPRECATED = -32
    # P2P client errors.
    RPC_CLIENT_NOT_CONNECTED = -9
    RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10
    RPC_CLIENT_P2P_DISABLED = -31
    # Wallet errors (no wallet yet; listed so the numbers are reserved).
    RPC_WALLET_ERROR = -4
    RPC_WALLET_NOT_FOUND = -18


class RPCError(Exception):
    """An error reply: `code` and `message` go to the client verbatim (Core: JSONRPCError)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}
