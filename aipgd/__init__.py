"""aipgd: the AIPG full node.

Owns the node's packages: primitives (core), script, consensus, chain state, mempool,
mining, P2P and the daemon that wires them. It never imports rpc/, wallet/ or pouw/:
those sit on top and talk to the node through narrow interfaces.
"""

__version__ = "0.1.0"
