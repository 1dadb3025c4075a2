"""The full method table: every area's methods in one RPCTable (Core: RegisterAllCoreRPCCommands)."""

from __future__ import annotations

from rpc import blockchain, control, rawtransaction, util
from rpc.registry import RPCTable


def build_table() -> RPCTable:
    table = RPCTable()
    for area in (control, blockchain, util, rawtransaction):
        table.register(area.METHODS)
    return table
