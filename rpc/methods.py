"""The full method table: every area's methods in one RPCTable (Core: RegisterAllCoreRPCCommands)."""

from __future__ import annotations

from rpc import (
    blockchain,
    blocktemplate,
    chaininfo,
    control,
    mempool,
    mining,
    network,
    pouw,
    pouwjobs,
    rawtransaction,
    txlookup,
    util,
)
from rpc.registry import RPCTable


def build_table() -> RPCTable:
    table = RPCTable()
    for area in (control, blockchain, chaininfo, mempool, mining, blocktemplate, network, util,
                 rawtransaction, txlookup, pouw, pouwjobs):
        table.register(area.METHODS)
    return table


_CLI_PARAMS_HEADER = '''"""aipg-cli's parameter table (Core: rpc/client.cpp vRPCConvertParams).

A snapshot of every method's declared parameters (names, aliases and JSON kinds), so that the
client converts arguments without importing the server's method tables (and with them Numba and
the KawPoW engine). tests/unit/test_cli_params.py fails whenever it differs from the server's
declarations; regenerate it with
`python -c "from rpc.methods import render_cli_params as r; print(r(), end='')" > rpc/cli_params.py`.
It must never hold anything but data.
"""

from __future__ import annotations

from rpc.registry import Kind

PARAMS: dict[str, tuple[tuple[str, Kind], ...]] = {
'''


def render_cli_params() -> str:
    """The source of rpc/cli_params.py, generated from the registered methods."""
    table = build_table()
    lines = [_CLI_PARAMS_HEADER.rstrip("\n")]
    for name in sorted(table.methods):
        params = table.methods[name].params
        if not params:
            lines.append(f'    "{name}": (),')
            continue
        lines.append(f'    "{name}": (')
        lines.extend(f'        ("{p.name}", Kind.{p.kind.name}),' for p in params)
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"
