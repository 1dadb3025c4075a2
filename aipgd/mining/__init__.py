"""Block production: assembling block templates and searching their proof of work.

Owns the coinbase layout AIPG Core's miner writes (miner output, community-fee output at
index 1, BIP141 commitment) and the nonce search through `kawpow/`. It must never accept
or store blocks: finished blocks go to ChainState like any other block.
"""
