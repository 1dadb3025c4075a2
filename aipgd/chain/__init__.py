"""Chain storage: block flat files, the LevelDB block index and chainstate, and ChainState on top.

Owns every byte the node writes about the chain, in AIPG Core's on-disk formats, and the ordering
(blk fsync, then index batch, then chainstate batch with its best-block marker) that makes a kill -9
at any instant recoverable. It must never decide consensus validity: that is aipgd.consensus's job.
"""
