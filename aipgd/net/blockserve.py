"""Serving the chain to peers: getheaders, getblocks, getdata for blocks, getblocktxn, and new-block
announcements by headers (BIP130) or inv (Core: ProcessGetData, the getheaders/getblocks branches
of ProcessMessage, and SendMessages' block announcements).

Owns what we tell peers about our chain and the -maxuploadtarget rule for historical blocks. It must
never accept data from peers (aipgd.net.blocksync does) and never blocks the event loop on disk:
blocks are read in the executor, one at a time, waiting for the peer to drain its send queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aipgd.chain.blockindex import last_common_ancestor
from aipgd.chain.diskformat import BLOCK_VALID_SCRIPTS
from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.compactblocks import make_compact_block
from aipgd.net.protocol import (
    MAX_HEADERS_RESULTS,
    MAX_INV_SZ,
    MAX_LOCATOR_SZ,
    MSG_BLOCK,
    MSG_CMPCT_BLOCK,
    MSG_FILTERED_BLOCK,
    MSG_TX,
    MSG_TYPE_MASK,
    MSG_WITNESS_FLAG,
)
from aipgd.net.syncstate import (
    HISTORICAL_BLOCK_AGE,
    MAX_BLOCKS_TO_ANNOUNCE,
    MAX_BLOCKTXN_DEPTH,
    MAX_CMPCTBLOCK_DEPTH,
    MAX_GETBLOCKS_RESULTS,
    STALE_BLOCK_SERVE_AGE,
)

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.net.chainview import SyncChainView
    from aipgd.net.peer import Peer
    from aipgd.net.txrelay import TxRelay

logger = logging.getLogger(__name__)


class BlockServer:
    def __init__(self, chain: SyncChainView, peers: Callable[[], Iterable[Peer]],
                 upload_target_reached: Callable[[bool], bool], loop: asyncio.AbstractEventLoop) -> None:
        self.chain = chain
        self._peers = peers
        self._upload_target_reached = upload_target_reached
        self.loop = loop
        self._announced_tip: BlockIndex | None = chain.tip()
        self._tasks: set[asyncio.Task[None]] = set()
        self.tx_relay: TxRelay | None = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(None, fn, *args)

    # --- getheaders / getblocks ------------------------------------------------------------------------
    async def on_getheaders(self, peer: Peer, m: msg.GetHeaders) -> None:
        if len(m.locator) > MAX_LOCATOR_SZ:
            peer.disconnect(f"getheaders locator size {len(m.locator)} > {MAX_LOCATOR_SZ}")
            return
        if self.chain.initial_block_download() and not peer.whitelisted:
            log_print(logger, "net", "Ignoring getheaders from peer=%d because node is in initial block "
                      "download", peer.id)
            return
        if not m.locator:
            index = self.chain.lookup(m.hash_stop)
            if index is None or not self._request_allowed(index):
                return
            found = [index]
        else:
            found = await self._call(self.chain.headers_after, m.locator, m.hash_stop, MAX_HEADERS_RESULTS)
        log_print(logger, "net", "getheaders %d to %s from peer=%d", found[0].height if found else -1,
                  m.hash_stop[::-1].hex() if any(m.hash_stop) else "end", peer.id)
        # Core: pindexBestHeaderSent, what the peer now knows (for later announcements by headers).
        peer.sync.best_header_sent = found[-1] if found else self.chain.tip()
        peer.send(msg.Headers(tuple(i.header for i in found)))

    async def on_getblocks(self, peer: Peer, m: msg.GetBlocks) -> None:
        if len(m.locator) > MAX_LOCATOR_SZ:
            peer.disconnect(f"getblocks locator size {len(m.locator)} > {MAX_LOCATOR_SZ}")
            return
        found = await self._call(self.chain.headers_after, m.locator, m.hash_stop, MAX_GETBLOCKS_RESULTS)
        items = []
        for index in found:
            if index.block_hash == m.hash_stop:
                break
            if self.chain.pruned and not index.have_data:
                log_print(logger, "net", "getblocks stopping, pruned or too old block at %d", index.height)
                break
            items.append(msg.Inventory(MSG_BLOCK, index.block_hash))
        if len(items) == MAX_GETBLOCKS_RESULTS:
            # Core: hashContinue, when the peer asks for the last one we send the tip's inv.
            peer.sync.hash_continue = items[-1].hash
        if items:
            peer.send(msg.Inv(tuple(items)))

    # --- getdata ---------------------------------------------------------------------------------------
    def _request_allowed(self, index: BlockIndex) -> bool:
        """Core: BlockRequestAllowed, off-chain blocks only if valid and recent (fingerprinting)."""
        if self.chain.in_active_chain(index):
            return True
        best = self.chain.best_header()
        return (index.is_valid(BLOCK_VALID_SCRIPTS) and best is not None
                and best.time - index.time < STALE_BLOCK_SERVE_AGE)

    async def on_getdata(self, peer: Peer, m: msg.GetData) -> None:
        if len(m.items) > MAX_INV_SZ:
            peer.misbehaving(20, f"message getdata size() = {len(m.items)}")
            return
        log_print(logger, "net", "received getdata (%d invsz) peer=%d", len(m.items), peer.id)
        not_found = []
        for item in m.items:
            if peer.closed:
                return
            kind = item.type & MSG_TYPE_MASK
            if kind in (MSG_BLOCK, MSG_FILTERED_BLOCK, MSG_CMPCT_BLOCK):
                await peer.wait_send_drained()
                if not await self._serve_block(peer, item):
                    not_found.append(item)
            elif kind == MSG_TX and (self.tx_relay is None or not self.tx_relay.serve(peer, item)):
                not_found.append(item)
        if not_found and not peer.closed:
            peer.send(msg.NotFound(tuple(not_found)))

    async def _serve_block(self, peer: Peer, item: msg.Inventory) -> bool:
        """Core: ProcessGetBlockData. False when we cannot send it (the peer gets notfound)."""
        index = self.chain.lookup(item.hash)
        if index is None or not self._request_allowed(index):
            log_print(logger, "net", "ignoring request from peer=%d for unknown or unservable block %s",
                      peer.id, item.hash[::-1].hex())
            return False
        best = self.chain.best_header()
        historical = best is not None and best.time - index.time > HISTORICAL_BLOCK_AGE
        if historical and not peer.whitelisted and self._upload_target_reached(True):
            logger.info("historical block serving limit reached, disconnect peer=%d", peer.id)
            peer.disconnect("historical block serving limit reached (-maxuploadtarget)")
            return True
        block = await self._call(self.chain.get_block, index)
        if block is None:
            return False
        compact = (item.type & MSG_TYPE_MASK) == MSG_CMPCT_BLOCK
        tip = self.chain.tip()
        if compact and tip is not None and index.height >= tip.height - MAX_CMPCTBLOCK_DEPTH \
                and peer.sync.cmpct_version >= 2:
            peer.send(make_compact_block(block))
        else:
            # Deeper than MAX_CMPCTBLOCK_DEPTH the full block answers a compact request (BIP152).
            peer.send_payload("block", block.serialize(bool(item.type & MSG_WITNESS_FLAG) or compact))
        if peer.sync.hash_continue == item.hash:
            tip = self.chain.tip()
            if tip is not None:
                peer.send(msg.Inv((msg.Inventory(MSG_BLOCK, tip.block_hash),)))
            peer.sync.hash_continue = None
        return True

    async def on_getblocktxn(self, peer: Peer, m: msg.GetBlockTxn) -> None:
        index = self.chain.lookup(m.block_hash)
        tip = self.chain.tip()
        if index is None or not index.have_data:
            log_print(logger, "net", "Peer %d sent us a getblocktxn for a block we don't have", peer.id)
            return
        block = await self._call(self.chain.get_block, index)
        if block is None:
            return
        if tip is None or index.height < tip.height - MAX_BLOCKTXN_DEPTH:
            # Core: too deep for blocktxn; the peer gets the whole block.
            peer.send_payload("block", block.serialize(True))
            return
        if any(i >= len(block.vtx) for i in m.indexes):
            peer.misbehaving(100, f"Peer {peer.id} sent us a getblocktxn with out-of-bounds tx indices")
            return
        peer.send(msg.BlockTxn(m.block_hash, tuple(block.vtx[i] for i in m.indexes)))

    # --- announcements ---------------------------------------------------------------------------------
    def new_tip(self, tip: BlockIndex, initial_download: bool) -> None:
        """Core: PeerLogicValidation::UpdatedBlockTip, queue the new blocks for every peer."""
        previous = self._announced_tip
        self._announced_tip = tip
        if initial_download:
            return
        fork = last_common_ancestor(previous, tip) if previous is not None else tip.prev
        hashes: list[bytes] = []
        walk: BlockIndex | None = tip
        while walk is not None and walk is not fork and len(hashes) < MAX_BLOCKS_TO_ANNOUNCE:
            hashes.append(walk.block_hash)
            walk = walk.prev
        hashes.reverse()
        compact_peers = []
        for peer in self._peers():
            st = peer.sync
            if len(hashes) == 1 and st.cmpct_high_bandwidth and st.cmpct_version >= 2 \
                    and not st.has_header(tip) and tip.prev is not None and st.has_header(tip.prev):
                compact_peers.append(peer)  # Core: NewPoWValidBlock, straight to high-bandwidth peers
                continue
            start = peer.remote.start_height
            if tip.height > (start - 2000 if start != -1 else 0):
                st.blocks_to_announce.extend(hashes)
            self.send_announcements(peer)
        if compact_peers:
            task = self.loop.create_task(self._announce_compact(tip, compact_peers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _announce_compact(self, tip: BlockIndex, peers: list[Peer]) -> None:
        block = await self._call(self.chain.get_block, tip)
        if block is None:
            return
        cmpct = make_compact_block(block)
        for peer in peers:
            if not peer.closed and not peer.sync.has_header(tip):
                log_print(logger, "net", "sending cmpctblock %s to peer=%d", tip.hash_hex, peer.id)
                peer.send(cmpct)
                peer.sync.best_header_sent = tip

    def send_announcements(self, peer: Peer) -> None:
        """Core: SendMessages' announcement part: headers when the peer asked for them (sendheaders)
        and they connect to what it knows, else an inv of the last block."""
        st = peer.sync
        if not st.blocks_to_announce or not peer.successfully_connected:
            return
        queued, st.blocks_to_announce = st.blocks_to_announce, []
        revert_to_inv = not peer.prefers_headers
        headers: list[BlockIndex] = []
        best: BlockIndex | None = None
        if not revert_to_inv:
            for block_hash in queued:
                index = self.chain.lookup(block_hash)
                if index is None or not self.chain.in_active_chain(index):
                    revert_to_inv = True  # a reorg since it was queued
                    break
                if best is not None and index.prev is not best:
                    revert_to_inv = True  # not continuous
                    break
                best = index
                if headers:
                    headers.append(index)
                elif st.has_header(index):
                    continue
                elif index.prev is None or st.has_header(index.prev):
                    headers.append(index)
                else:
                    revert_to_inv = True  # the peer does not know the parent: let it ask
                    break
        if not revert_to_inv:
            if headers:
                log_print(logger, "net", "sending header announcement (%d) up to %s to peer=%d",
                          len(headers), headers[-1].hash_hex, peer.id)
                peer.send(msg.Headers(tuple(i.header for i in headers)))
                st.best_header_sent = best
            return
        last = self.chain.lookup(queued[-1])
        if last is not None and self.chain.in_active_chain(last) and not st.has_header(last):
            log_print(logger, "net", "sending inv announcement of %s to peer=%d", last.hash_hex, peer.id)
            peer.send(msg.Inv((msg.Inventory(MSG_BLOCK, last.block_hash),)))
