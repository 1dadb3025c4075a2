"""Primitives of the AIPG chain: serialization, hashes, transactions, headers, blocks,
merkle roots, compact targets, base58 addresses and the network parameters.

Everything here is pure and immutable; parsers bound every length before allocating.
Nothing here does I/O or reads a global "current network": params are passed explicitly.
"""
