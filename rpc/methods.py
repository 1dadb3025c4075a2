"""The full method table: every area's methods in one RPCTable (Core: RegisterAllCoreRPCCommands)."""

from __future__ import annotations

from rpc import blockchain, chaininfo, control, mempool, mining, network, rawtransaction, txlookup, util
from rpc.registry import RPCTable


def build_table() -> RPCTable:
    table = RPCTable()
    for area in (control, blockchain, chaininfo, mempool, mining, network, util, rawtransaction, txlookup):
        table.register(area.METHODS)
    return table
