"""The P2P network layer: wire codec, peers, connection management, address and ban books, header
and block sync, block and transaction relay.

Owns everything between a TCP socket and the node: framing and message (de)serialization with
limits at the parser, one asyncio Peer per connection with its budget, the ConnectionManager that
opens, accepts and evicts connections, AddrMan (peers.dat) and BanMan (banlist.dat), headers-first
sync with parallel block download (blocksync, blockdownload), serving and announcing blocks
(blockserve, BIP152 compactblocks) and transaction relay (txrelay). It must never judge consensus:
blocks and headers go to the chain through the narrow ChainView interface, transactions to the mempool.
"""
