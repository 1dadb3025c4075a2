"""Optional indexes built from connected blocks (Core: index/): the transaction index (-txindex).

Each index follows ChainState through its listener hook and owns its own database. It must never
write chain state, and the chain must never depend on an index being present or current.
"""
