"""The memory pool (Core: txmempool, policy/, validation's AcceptToMemoryPool, policy/fees).

Owns unconfirmed transactions: standardness and fee policy, acceptance against the chain tip,
ancestor/descendant bookkeeping and limits, replacement (BIP125), eviction, expiry, mempool.dat
and fee estimation. It must never write chain state: it reads the tip through ChainState and
follows it through the chain's listener signals.
"""
