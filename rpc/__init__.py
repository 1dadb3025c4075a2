"""The JSON-RPC interface: an aiohttp server speaking AIPG Core's protocol, its method tables, and aipg-cli.

Owns HTTP and JSON-RPC framing, authentication, access control, work-queue limits, the per-area method
tables (control, blockchain, util, rawtransactions) and their help texts. It must never reach into the
node's internals: methods see the node only through `rpc.interface.NodeInterface`.
"""
