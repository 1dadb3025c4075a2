"""Header-first sync and parallel block download (Core: ProcessHeadersMessage, FindNextBlocksToDownload,
the block/inv branches of ProcessMessage and SendMessages' sync, stall and download-timeout rules).

Owns which peer we sync headers from, which blocks are in flight from whom (16 per peer, inside a
1024-block window past the last block we have in common), stall and timeout disconnections, and
handing headers and blocks to the chain. Blocks are requested only once their headers connect, so
there is no orphan-block pool. It must never write chain state except through SyncChainView, and
never runs proof-of-work or validation on the event loop (they go to the executor).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aipgd.chain.diskformat import BLOCK_VALID_TREE
from aipgd.core.uint256 import block_proof
from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.blockdownload import find_next_blocks
from aipgd.net.blockserve import BlockServer
from aipgd.net.chainview import POW_REJECT_REASONS
from aipgd.net.compactblocks import CompactBlockError, PartialBlock
from aipgd.net.peer import ConnectionType
from aipgd.net.protocol import (
    MAX_HEADERS_RESULTS,
    MAX_INV_SZ,
    MSG_BLOCK,
    MSG_TX,
    MSG_TYPE_MASK,
    MSG_WITNESS_BLOCK,
    NODE_NETWORK,
    NODE_WITNESS,
)
from aipgd.net.syncprogress import SyncProgress
from aipgd.net.syncstate import (
    MAX_BLOCKS_IN_TRANSIT_PER_PEER,
    MAX_BLOCKS_TO_ANNOUNCE,
    MAX_UNCONNECTING_HEADERS,
    SyncTimings,
)

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.chain.progress import ProgressReporter
    from aipgd.core.transaction import Transaction
    from aipgd.net.chainview import HeadersResult, SyncChainView
    from aipgd.net.peer import Peer
    from aipgd.net.txrelay import TxRelay

logger = logging.getLogger(__name__)

# Core: MIN_BLOCKS_TO_KEEP, an unrequested block further ahead of the tip is ignored.
MIN_BLOCKS_TO_KEEP = 288
# Core: the best header is "recent" (sync from every peer, not just one) within a day.
RECENT_HEADER_AGE = 24 * 60 * 60
# Core: direct fetch after headers when our tip is at most 20 spacings old.
DIRECT_FETCH_SPACINGS = 20
# Core: MaybeSetPeerAsAnnouncingHeaderAndIDs keeps three high-bandwidth compact-block peers.
MAX_HIGH_BANDWIDTH_PEERS = 3


class SyncStats:
    """Counters for getnettotals-like reporting and tests."""

    def __init__(self) -> None:
        self.headers_received = 0
        self.header_pow_checks = 0
        self.blocks_received = 0


class BlockSync:
    def __init__(self, chain: SyncChainView, peers: Callable[[], Iterable[Peer]], local_services: int,
                 upload_target_reached: Callable[[bool], bool], loop: asyncio.AbstractEventLoop, *,
                 timings: SyncTimings | None = None, progress: ProgressReporter | None = None,
                 clock: Callable[[], float] = time.time,
                 mempool_txs: Callable[[], Iterable[Transaction]] | None = None) -> None:
        self.chain = chain
        self._peers = peers
        self.local_services = local_services
        self.loop = loop
        self.timings = timings or SyncTimings()
        self.clock = clock
        self.server = BlockServer(chain, peers, upload_target_reached, loop)
        self.stats = SyncStats()
        # Core: mapBlocksInFlight, block hash -> peer id.
        self.in_flight: dict[bytes, int] = {}
        # Blocks received and being validated: neither in flight nor to be asked for again.
        self._validating: set[bytes] = set()
        self.sync_started = 0  # Core: nSyncStarted
        self.preferred_download = 0  # Core: nPreferredDownload
        self._progress = SyncProgress(progress)
        self._subscribed = False
        # Compact blocks are rebuilt from these (the mempool's transactions), when there is a mempool.
        self.mempool_txs = mempool_txs
        # Peers asked to announce new blocks with cmpctblock, oldest first.
        self._high_bandwidth: list[int] = []
        # Transaction relay, when the node has a mempool (set by the ConnectionManager).
        self.tx_relay: TxRelay | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.chain.subscribe_tip(self._on_tip_from_any_thread)
        self._subscribed = True

    def stop(self) -> None:
        if self._subscribed:
            self.chain.unsubscribe_tip(self._on_tip_from_any_thread)
            self._subscribed = False
        self._progress.finish()

    def _on_tip_from_any_thread(self, tip: BlockIndex, fork: BlockIndex | None,
                                initial_download: bool) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._on_tip, tip, initial_download)

    def _on_tip(self, tip: BlockIndex, initial_download: bool) -> None:
        self.server.new_tip(tip, initial_download)
        if self.tx_relay is not None:
            self.tx_relay.recent_rejects.clear()  # Core: recentRejects resets whenever the tip moves
        self._progress.report(tip, self.chain.best_header(), len(self.in_flight))

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(None, fn, *args)

    # --- peers -----------------------------------------------------------------------------------------
    @staticmethod
    def _is_client(peer: Peer) -> bool:
        return not peer.remote.services & NODE_NETWORK

    def on_connected(self, peer: Peer) -> None:
        """After verack (Core: UpdatePreferredDownload)."""
        st = peer.sync
        st.preferred_download = ((not peer.inbound or peer.whitelisted)
                                 and peer.conn_type not in (ConnectionType.SEED, ConnectionType.FEELER)
                                 and not self._is_client(peer))
        if st.preferred_download:
            self.preferred_download += 1
        self.tick(peer)

    def on_disconnected(self, peer: Peer) -> None:
        """Core: FinalizeNode, the peer's blocks in flight go back to the pool for others."""
        st = peer.sync
        if st.sync_started:
            self.sync_started -= 1
            st.sync_started = False
        if st.preferred_download:
            self.preferred_download -= 1
            st.preferred_download = False
        for block_hash in st.in_flight:
            if self.in_flight.get(block_hash) == peer.id:
                del self.in_flight[block_hash]
        st.in_flight.clear()
        if self.tx_relay is not None:
            self.tx_relay.on_disconnected(peer)
        # Someone else may pick the blocks up now.
        for other in self._peers():
            if other is not peer and not other.closed:
                self._request_blocks(other)

    # --- dispatch --------------------------------------------------------------------------------------
    async def handle(self, peer: Peer, m: msg.Message) -> bool:
        """Handle a sync message; False when it is not one of ours."""
        server = self.server
        if isinstance(m, msg.Headers):
            await self.on_headers(peer, m)
        elif isinstance(m, msg.GetBlocks):
            await server.on_getblocks(peer, m)
        elif isinstance(m, msg.GetHeaders):
            await server.on_getheaders(peer, m)
        elif isinstance(m, msg.NotFound):
            self.on_notfound(peer, m)
        elif isinstance(m, msg.GetData):
            await server.on_getdata(peer, m)
        elif isinstance(m, msg.Inv):
            self.on_inv(peer, m)
        elif isinstance(m, msg.BlockMessage):
            await self.on_block(peer, m.block)
        elif isinstance(m, msg.CmpctBlock):
            await self.on_cmpctblock(peer, m)
        elif isinstance(m, msg.GetBlockTxn):
            await server.on_getblocktxn(peer, m)
        elif isinstance(m, msg.BlockTxn):
            await self.on_blocktxn(peer, m)
        elif isinstance(m, msg.TxMessage):
            if self.tx_relay is not None:
                await self.tx_relay.on_tx(peer, m.tx)
        elif isinstance(m, msg.SendCmpct):
            if m.version in (1, 2):
                peer.sync.cmpct_version = max(peer.sync.cmpct_version, m.version)
            if m.version == 2:
                # Core: only the version we use (2, with witnesses) sets the announcement mode.
                peer.sync.cmpct_high_bandwidth = m.announce
            return False  # PeerLogic records it too
        else:
            return False
        return True

    # --- block availability ----------------------------------------------------------------------------
    def _process_block_availability(self, peer: Peer) -> None:
        """Core: ProcessBlockAvailability, resolve an announced hash once its header is known."""
        st = peer.sync
        if st.hash_last_unknown_block is None:
            return
        index = self.chain.lookup(st.hash_last_unknown_block)
        if index is not None and index.chain_work > 0:
            if st.best_known_block is None or index.chain_work >= st.best_known_block.chain_work:
                st.best_known_block = index
            st.hash_last_unknown_block = None

    def _update_block_availability(self, peer: Peer, block_hash: bytes) -> None:
        """Core: UpdateBlockAvailability."""
        self._process_block_availability(peer)
        st = peer.sync
        index = self.chain.lookup(block_hash)
        if index is not None and index.chain_work > 0:
            if st.best_known_block is None or index.chain_work >= st.best_known_block.chain_work:
                st.best_known_block = index
        else:
            st.hash_last_unknown_block = block_hash

    def _best_header_height(self) -> int:
        best = self.chain.best_header()
        return best.height if best is not None else -1

    def _send_getheaders(self, peer: Peer, start: BlockIndex | None, hash_stop: bytes = bytes(32)) -> None:
        locator = self.chain.locator(start)
        peer.send(msg.GetHeaders(peer.remote.send_version or 0, tuple(locator), hash_stop))

    # --- headers ---------------------------------------------------------------------------------------
    async def on_headers(self, peer: Peer, m: msg.Headers) -> None:
        """Core: ProcessHeadersMessage."""
        headers = m.headers
        st = peer.sync
        if len(headers) > MAX_HEADERS_RESULTS:
            peer.misbehaving(20, f"headers message size = {len(headers)}")
            return
        if not headers:
            return
        self.stats.headers_received += len(headers)
        if self.chain.lookup(headers[0].prev_hash) is None:
            if len(headers) < MAX_BLOCKS_TO_ANNOUNCE:
                # An announcement whose parent we lack: ask for the headers between.
                st.unconnecting_headers += 1
                self._send_getheaders(peer, self.chain.best_header())
                log_print(logger, "net", "received header %s: missing prev block %s, sending getheaders "
                          "(%d) to end (peer=%d, nUnconnectingHeaders=%d)", headers[0].hash_hex,
                          headers[0].prev_hash[::-1].hex(), self._best_header_height(), peer.id,
                          st.unconnecting_headers)
                self._update_block_availability(peer, headers[-1].hash)
                if st.unconnecting_headers % MAX_UNCONNECTING_HEADERS == 0:
                    peer.misbehaving(20, f"{st.unconnecting_headers} non-connecting headers")
                return
            # Core's AcceptBlockHeader would verify the proof of work first; it is never worth it.
            peer.misbehaving(10, "invalid header received: prev-blk-not-found")
            return
        prev_hash: bytes | None = None
        for header in headers:
            if prev_hash is not None and header.prev_hash != prev_hash:
                peer.misbehaving(20, "non-continuous headers sequence")
                return
            prev_hash = header.hash
        result: HeadersResult = await self._call(self.chain.accept_headers, headers)
        self.stats.header_pow_checks += result.pow_checks
        log_print(logger, "net", "accepted %d of %d headers from peer=%d (%d proof-of-work checks)",
                  result.accepted, len(headers), peer.id, result.pow_checks)
        if result.last is not None:
            self._update_block_availability(peer, result.last.block_hash)
        if not result.state:
            state = result.state
            dos = state.dos
            if state.reject_reason in POW_REJECT_REASONS:
                dos = max(dos, 100)  # a failed proof of work is never honest
            if dos > 0:
                peer.misbehaving(dos, f"invalid header received: {state.reject_reason}")
            return
        st.unconnecting_headers = 0
        last = result.last
        assert last is not None
        if len(headers) == MAX_HEADERS_RESULTS:
            log_print(logger, "net", "more getheaders (%d) to end to peer=%d (startheight:%d)",
                      last.height, peer.id, peer.remote.start_height)
            self._send_getheaders(peer, last)
        self._direct_fetch(peer, last)
        self._request_blocks(peer)

    def _direct_fetch(self, peer: Peer, last: BlockIndex) -> None:
        """Core: download new blocks announced by headers at once when we are near the tip."""
        tip = self.chain.tip()
        if tip is None or tip.time <= self.clock() - self.chain.target_spacing * DIRECT_FETCH_SPACINGS:
            return
        if not last.is_valid(BLOCK_VALID_TREE) or tip.chain_work > last.chain_work:
            return
        wanted: list[BlockIndex] = []
        walk: BlockIndex | None = last
        while walk is not None and not self.chain.in_active_chain(walk) \
                and len(wanted) < MAX_BLOCKS_IN_TRANSIT_PER_PEER:
            if not walk.have_data and walk.block_hash not in self.in_flight \
                    and walk.block_hash not in self._validating:
                wanted.append(walk)
            walk = walk.prev
        if walk is None or not self.chain.in_active_chain(walk):
            log_print(logger, "net", "Large reorg, won't direct fetch to %s (%d)", last.hash_hex, last.height)
            return
        room = MAX_BLOCKS_IN_TRANSIT_PER_PEER - len(peer.sync.in_flight)
        wanted = list(reversed(wanted))[:max(room, 0)]
        if wanted:
            log_print(logger, "net", "Downloading blocks toward %s (%d) via headers direct fetch",
                      last.hash_hex, last.height)
            self._request(peer, wanted)

    # --- inv / notfound --------------------------------------------------------------------------------
    def on_inv(self, peer: Peer, m: msg.Inv) -> None:
        if len(m.items) > MAX_INV_SZ:
            peer.misbehaving(20, f"message inv size() = {len(m.items)}")
            return
        txids = [i.hash for i in m.items if i.type & MSG_TYPE_MASK == MSG_TX]
        if txids and self.tx_relay is not None:
            self.tx_relay.on_tx_inv(peer, txids)
        for item in m.items:
            if item.type & MSG_TYPE_MASK != MSG_BLOCK:
                continue
            self._update_block_availability(peer, item.hash)
            if self.chain.lookup(item.hash) is None and item.hash not in self.in_flight:
                # Core: headers first; the block is fetched once its header connects.
                self._send_getheaders(peer, self.chain.best_header(), item.hash)
                log_print(logger, "net", "getheaders (%d) %s to peer=%d", self._best_header_height(),
                          item.hash[::-1].hex(), peer.id)

    def on_notfound(self, peer: Peer, m: msg.NotFound) -> None:
        released = False
        for item in m.items:
            if item.type & MSG_TYPE_MASK == MSG_BLOCK and self.in_flight.get(item.hash) == peer.id:
                self._mark_received(peer, item.hash)
                released = True
        if released:
            for other in self._peers():
                if not other.closed:
                    self._request_blocks(other)

    # --- blocks ----------------------------------------------------------------------------------------
    async def on_block(self, peer: Peer, block: Any) -> None:
        block_hash = block.hash
        requested = self.in_flight.get(block_hash) == peer.id
        prev = self.chain.lookup(block.header.prev_hash)
        if prev is None:
            # Never stored without its parent's header: ask for the headers instead.
            if requested:
                self._mark_received(peer, block_hash)
            self._send_getheaders(peer, self.chain.best_header(), block_hash)
            log_print(logger, "net", "block %s from peer=%d does not connect; asked for headers",
                      block.hash_hex, peer.id)
            return
        if not requested and not (peer.whitelisted and not self.chain.initial_block_download()):
            known = self.chain.lookup(block_hash)
            tip = self.chain.tip()
            work = prev.chain_work + block_proof(block.header.bits)
            if (known is not None and known.have_data) or (tip is not None and (
                    work <= tip.chain_work or prev.height + 1 > tip.height + MIN_BLOCKS_TO_KEEP)):
                log_print(logger, "net", "ignoring unrequested block %s from peer=%d", block.hash_hex,
                          peer.id)
                return
        await self._process(peer, block)

    async def _process(self, peer: Peer, block: Any) -> None:
        block_hash = block.hash
        self._mark_received(peer, block_hash)
        self._validating.add(block_hash)
        try:
            # Keep the pipe full while this one is validated.
            self._request_blocks(peer)
            state, new = await self._call(self.chain.process_block, block)
        finally:
            self._validating.discard(block_hash)
        if new:
            self.stats.blocks_received += 1
            peer.stats.last_block_time = self.clock()
        if not state and state.dos > 0 and not state.corruption_possible:
            peer.misbehaving(state.dos, f"invalid block {block.hash_hex}: {state.reject_reason}")
            return
        tip = self.chain.tip()
        if new and state and tip is not None and tip.block_hash == block_hash and not self.in_flight:
            self._maybe_set_high_bandwidth(peer)
        if not peer.closed:
            self._request_blocks(peer)

    def _maybe_set_high_bandwidth(self, peer: Peer) -> None:
        """Core: MaybeSetPeerAsAnnouncingHeaderAndIDs, the last three peers to bring us a new tip
        announce the next ones with cmpctblock."""
        if peer.sync.cmpct_version < 2 or not self.local_services & NODE_WITNESS \
                or self.chain.initial_block_download():
            return
        if peer.id in self._high_bandwidth:
            self._high_bandwidth.remove(peer.id)
            self._high_bandwidth.append(peer.id)
            return
        peers = {p.id: p for p in self._peers()}
        self._high_bandwidth = [i for i in self._high_bandwidth if i in peers]
        if len(self._high_bandwidth) >= MAX_HIGH_BANDWIDTH_PEERS:
            oldest = peers[self._high_bandwidth.pop(0)]
            oldest.send(msg.SendCmpct(False, 2))
        peer.send(msg.SendCmpct(True, 2))
        self._high_bandwidth.append(peer.id)

    async def on_cmpctblock(self, peer: Peer, m: msg.CmpctBlock) -> None:
        """BIP152: accept the header; rebuild the next block from the mempool and a getblocktxn,
        otherwise fetch the full block."""
        if self.chain.lookup(m.header.prev_hash) is None:
            if not self.chain.initial_block_download():
                self._send_getheaders(peer, self.chain.best_header())
            return
        result: HeadersResult = await self._call(self.chain.accept_headers, [m.header])
        self.stats.header_pow_checks += result.pow_checks
        if not result.state:
            dos = result.state.dos
            if result.state.reject_reason in POW_REJECT_REASONS:
                dos = max(dos, 100)
            if dos > 0:
                peer.misbehaving(dos, f"invalid header received: {result.state.reject_reason}")
            return
        index = result.last
        assert index is not None
        self._update_block_availability(peer, index.block_hash)
        tip = self.chain.tip()
        owner = self.in_flight.get(index.block_hash)
        if index.have_data or tip is None or index.chain_work <= tip.chain_work \
                or (owner is not None and owner != peer.id):
            return
        if index.prev is not tip or len(peer.sync.in_flight) >= MAX_BLOCKS_IN_TRANSIT_PER_PEER:
            if owner is None:
                self._request(peer, [index])
            return
        try:
            partial = PartialBlock.start(m, self.mempool_txs() if self.mempool_txs is not None else ())
        except CompactBlockError as exc:
            peer.misbehaving(100, f"invalid compact block: {exc}")
            return
        block = partial.fill() if partial is not None and not partial.missing else None
        if block is not None and partial is not None:
            self._log_reconstructed(block, partial, 0)
            await self._process(peer, block)
            return
        if owner is None:
            self._mark_in_flight(peer, index)
        if partial is None or not partial.missing:
            # A short-id collision (or a merkle mismatch): the full block instead.
            peer.send(msg.GetData((msg.Inventory(self._block_inv_type(peer), index.block_hash),)))
            return
        peer.sync.partial_blocks[index.block_hash] = partial
        peer.send(msg.GetBlockTxn(index.block_hash, tuple(partial.missing)))

    def _log_reconstructed(self, block: Any, partial: PartialBlock, requested: int) -> None:
        log_print(logger, "net", "Successfully reconstructed block %s with %d txn prefilled, %d txn from "
                  "mempool and %d txn requested", block.hash_hex, partial.prefilled, partial.from_mempool,
                  requested)

    async def on_blocktxn(self, peer: Peer, m: msg.BlockTxn) -> None:
        partial = peer.sync.partial_blocks.pop(m.block_hash, None)
        if not isinstance(partial, PartialBlock) or self.in_flight.get(m.block_hash) != peer.id:
            log_print(logger, "net", "Peer %d sent us block transactions for block we weren't expecting",
                      peer.id)
            return
        try:
            block = partial.fill(m.transactions)
        except CompactBlockError as exc:
            peer.misbehaving(100, f"invalid compact block/non-matching block transactions: {exc}")
            return
        if block is None:
            peer.send(msg.GetData((msg.Inventory(self._block_inv_type(peer), m.block_hash),)))
            return
        self._log_reconstructed(block, partial, len(m.transactions))
        await self._process(peer, block)

    # --- download --------------------------------------------------------------------------------------
    def _mark_received(self, peer: Peer, block_hash: bytes) -> None:
        """Core: MarkBlockAsReceived."""
        owner = self.in_flight.pop(block_hash, None)
        holder = peer
        if owner is not None and owner != peer.id:
            holder = next((p for p in self._peers() if p.id == owner), peer)
        st = holder.sync
        st.partial_blocks.pop(block_hash, None)
        if block_hash in st.in_flight:
            first = next(iter(st.in_flight))
            del st.in_flight[block_hash]
            if first == block_hash:
                st.downloading_since = max(st.downloading_since, self.clock())
        st.stalling_since = 0.0

    def _block_inv_type(self, peer: Peer) -> int:
        return MSG_WITNESS_BLOCK if peer.remote.services & NODE_WITNESS and \
            self.local_services & NODE_WITNESS else MSG_BLOCK

    def _mark_in_flight(self, peer: Peer, index: BlockIndex) -> None:
        """Core: MarkBlockAsInFlight."""
        now = self.clock()
        st = peer.sync
        if not st.in_flight:
            st.downloading_since = max(st.downloading_since, now)
        st.in_flight[index.block_hash] = now
        self.in_flight[index.block_hash] = peer.id

    def _request(self, peer: Peer, blocks: list[BlockIndex]) -> None:
        kind = self._block_inv_type(peer)
        items = []
        for index in blocks:
            if index.block_hash in self.in_flight:
                continue
            self._mark_in_flight(peer, index)
            items.append(msg.Inventory(kind, index.block_hash))
            log_print(logger, "net", "Requesting block %s (%d) peer=%d", index.hash_hex, index.height,
                      peer.id)
        if items:
            peer.send(msg.GetData(tuple(items)))

    def _can_fetch(self, peer: Peer) -> bool:
        if peer.sync.preferred_download:
            return True
        if self.preferred_download == 0 and not self._is_client(peer) and \
                peer.conn_type is not ConnectionType.SEED:
            return True
        return not self.chain.initial_block_download()

    def _request_blocks(self, peer: Peer) -> None:
        if not peer.successfully_connected or peer.closed or self._is_client(peer):
            return
        if not self._can_fetch(peer):
            return
        room = MAX_BLOCKS_IN_TRANSIT_PER_PEER - len(peer.sync.in_flight)
        if room <= 0:
            return
        self._process_block_availability(peer)
        blocks, staller = find_next_blocks(self.chain, peer.sync, peer.id, room, self.in_flight,
                                           self._validating)
        self._request(peer, blocks)
        if not peer.sync.in_flight and staller is not None:
            for other in self._peers():
                if other.id == staller and not other.sync.stalling_since:
                    other.sync.stalling_since = self.clock()
                    log_print(logger, "net", "Stall started peer=%d", staller)

    # --- the periodic part (Core: SendMessages) --------------------------------------------------------
    def tick(self, peer: Peer) -> None:
        if not peer.successfully_connected or peer.closed:
            return
        now = self.clock()
        st = peer.sync
        best = self.chain.best_header()
        if not st.sync_started and not self._is_client(peer) and best is not None:
            fetch = st.preferred_download or (self.preferred_download == 0
                                              and peer.conn_type is not ConnectionType.SEED)
            # Beyond Core: a peer that says it has more blocks than our best header is asked too.
            if (self.sync_started == 0 and fetch) or best.time > now - RECENT_HEADER_AGE \
                    or peer.remote.start_height > best.height:
                st.sync_started = True
                self.sync_started += 1
                start = best.prev if best.prev is not None else best
                log_print(logger, "net", "initial getheaders (%d) to peer=%d (startheight:%d)",
                          start.height, peer.id, peer.remote.start_height)
                self._send_getheaders(peer, start)
        self.server.send_announcements(peer)
        timings = self.timings
        if st.stalling_since and st.stalling_since < now - timings.stalling_timeout:
            logger.info("Peer=%d is stalling block download, disconnecting", peer.id)
            peer.disconnect("stalling block download")
            return
        if st.in_flight:
            others = sum(1 for p in self._peers() if p.sync.in_flight and p is not peer)
            limit = self.chain.target_spacing * (timings.download_timeout_base
                                                  + timings.download_timeout_per_peer * others)
            if now > st.downloading_since + limit:
                first = next(iter(st.in_flight))
                logger.info("Timeout downloading block %s from peer=%d, disconnecting", first[::-1].hex(),
                            peer.id)
                peer.disconnect("block download timeout")
                return
        self._request_blocks(peer)

    def maintenance(self) -> None:
        """Once a second: every peer's tick, and the IBD rate line."""
        for peer in list(self._peers()):
            try:
                self.tick(peer)
                if self.tx_relay is not None and not peer.closed:
                    self.tx_relay.trickle(peer)
            except Exception:
                logger.exception("sync timer failed for peer=%d", peer.id)
                peer.disconnect("internal error in the sync timer")
        tip = self.chain.tip()
        if tip is not None:
            self._progress.report(tip, self.chain.best_header(), len(self.in_flight))
