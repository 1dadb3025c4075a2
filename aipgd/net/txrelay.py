"""Transaction relay (Core: RelayTransaction, the tx/inv/getdata branches of ProcessMessage, the orphan
pool, and SendMessages' inventory trickle and feefilter).

Owns each peer's known-inventory filter and queue of transactions to announce, the Poisson trickle
(5 s average to inbound peers, half that to outbound, at most 35 a time, best fee rate first, above
the peer's feefilter), transaction requests in flight, recent rejects, the orphan pool with Core's
limits, the feefilter we send, and what whitelisted peers may do (-whitelistrelay, -whitelistforcerelay).
It must never judge a transaction: the mempool does, off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aipgd.core.transaction import MAX_MONEY
from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.protocol import FEEFILTER_VERSION, MAX_INV_SZ, MSG_TX, MSG_TYPE_MASK, MSG_WITNESS_TX

if TYPE_CHECKING:
    from aipgd.consensus.validation_state import ValidationState
    from aipgd.core.transaction import Transaction
    from aipgd.net.peer import Peer

logger = logging.getLogger(__name__)

# Core: net_processing.h / net.h / validation.h.
INVENTORY_BROADCAST_INTERVAL = 5.0
INVENTORY_BROADCAST_MAX = 7 * int(INVENTORY_BROADCAST_INTERVAL)
MAX_INV_KNOWN = 50_000  # the rolling filter's size
MAX_ORPHAN_TRANSACTIONS = 100
ORPHAN_TX_EXPIRE_TIME = 20 * 60
MAX_STANDARD_TX_WEIGHT = 400_000
AVG_FEEFILTER_BROADCAST_INTERVAL = 10 * 60
GETDATA_TX_INTERVAL = 60.0  # ask another peer after this long (Core: mapAskFor's 2-minute retry)
MAX_RECENT_REJECTS = 120_000
DEFAULT_WHITELISTRELAY = True
DEFAULT_WHITELISTFORCERELAY = True


class BoundedSet:
    """An insertion-ordered set that forgets its oldest members (Core: CRollingBloomFilter's role)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, item: Hashable) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


@dataclass
class PeerTxState:
    known: BoundedSet = field(default_factory=lambda: BoundedSet(MAX_INV_KNOWN))
    to_send: dict[bytes, None] = field(default_factory=dict)
    next_trickle: float = 0.0
    next_feefilter: float = 0.0
    feefilter_sent: int = -1


@dataclass
class OrphanTx:
    tx: Transaction
    from_peer: int
    expires: float


class TxRelay:
    def __init__(self, mempool: Any, peers: Callable[[], Iterable[Peer]], loop: asyncio.AbstractEventLoop,
                 initial_download: Callable[[], bool], clock: Callable[[], float] = time.time, *,
                 blocks_only: bool = False, whitelist_relay: bool = DEFAULT_WHITELISTRELAY,
                 whitelist_force_relay: bool = DEFAULT_WHITELISTFORCERELAY) -> None:
        self.mempool = mempool
        # Core: -blocksonly, peers' transactions are unwanted (whitelisted peers excepted with
        # -whitelistrelay, which -blocksonly turns off unless it is given; see connman_config).
        self.blocks_only = blocks_only
        self.whitelist_relay = whitelist_relay
        # Core: -whitelistforcerelay, a whitelisted peer's transaction we already have or reject without
        # a DoS score is announced all the same, and such peers get no feefilter from us.
        self.whitelist_force_relay = whitelist_force_relay
        self._peers = peers
        self.loop = loop
        self._initial_download = initial_download
        self.clock = clock
        self._state: dict[int, PeerTxState] = {}
        # txid -> fee rate (sat/kB) of transactions waiting to be announced.
        self._fee_rates: dict[bytes, int] = {}
        self.requested: dict[bytes, tuple[int, float]] = {}  # txid -> (peer id, when)
        self.recent_rejects = BoundedSet(MAX_RECENT_REJECTS)
        self.orphans: dict[bytes, OrphanTx] = {}

    def start(self) -> None:
        self.mempool.tx_listeners.append(self._on_accepted_any_thread)
        listeners = getattr(self.mempool, "block_listeners", None)
        if listeners is not None:
            listeners.append(self._on_block_any_thread)

    def stop(self) -> None:
        if self._on_accepted_any_thread in self.mempool.tx_listeners:
            self.mempool.tx_listeners.remove(self._on_accepted_any_thread)
        listeners = getattr(self.mempool, "block_listeners", None)
        if listeners is not None and self._on_block_any_thread in listeners:
            listeners.remove(self._on_block_any_thread)

    def _st(self, peer: Peer) -> PeerTxState:
        st = self._state.get(peer.id)
        if st is None:
            st = self._state[peer.id] = PeerTxState()
        return st

    def on_disconnected(self, peer: Peer) -> None:
        self._state.pop(peer.id, None)
        for txid in [t for t, (owner, _) in self.requested.items() if owner == peer.id]:
            del self.requested[txid]
        for txid in [t for t, o in self.orphans.items() if o.from_peer == peer.id]:
            del self.orphans[txid]

    # --- announcing ------------------------------------------------------------------------------------
    def _fee_rate(self, txid: bytes) -> int:
        """The pool entry's fee rate in sat/kB, 0 when the pool does not hold it."""
        with self.mempool.pool.lock:
            entry = self.mempool.pool.get(txid)
        return entry.modified_fee * 1000 // max(entry.vsize, 1) if entry is not None else 0

    def _on_accepted_any_thread(self, tx: Transaction) -> None:
        """Core: RelayTransaction; runs on the thread that accepted the transaction."""
        rate = self._fee_rate(tx.txid)
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._queue, tx.txid, rate)

    def _queue(self, txid: bytes, rate: int) -> None:
        self._fee_rates[txid] = rate
        for peer in self._peers():
            if peer.remote.relay and txid not in self._st(peer).known:
                self._st(peer).to_send[txid] = None

    def trickle(self, peer: Peer) -> None:
        """Core: SendMessages' inventory part, on a Poisson timer."""
        if not peer.successfully_connected or peer.closed:
            return
        st = self._st(peer)
        now = self.clock()
        self._maybe_send_feefilter(peer, st, now)
        if now < st.next_trickle:
            return
        interval = INVENTORY_BROADCAST_INTERVAL / (1 if peer.inbound else 2)
        st.next_trickle = now + random.expovariate(1 / interval)
        if not st.to_send:
            return
        pending, st.to_send = list(st.to_send), {}
        pending.sort(key=lambda t: self._fee_rates.get(t, 0), reverse=True)
        items: list[msg.Inventory] = []
        for txid in pending:
            rate = self._fee_rates.get(txid, 0)
            if txid in st.known or self.mempool.get_transaction(txid) is None:
                continue
            if peer.fee_filter and rate < peer.fee_filter:
                continue
            if len(items) >= INVENTORY_BROADCAST_MAX:
                st.to_send[txid] = None  # the next trickle
                continue
            st.known.add(txid)
            items.append(msg.Inventory(MSG_TX, txid))
        if items:
            peer.send(msg.Inv(tuple(items)))
        if len(self._fee_rates) > 4 * MAX_INV_KNOWN:
            self._fee_rates.clear()

    def _maybe_send_feefilter(self, peer: Peer, st: PeerTxState, now: float) -> None:
        """Core: the feefilter we send, our mempool's minimum, every ~10 minutes (Poisson); MAX_MONEY
        while in initial download or -blocksonly, since no transaction is wanted then."""
        # Core: "We don't want white listed peers to filter txs to us if we have -whitelistforcerelay".
        if peer.remote.version < FEEFILTER_VERSION or (peer.whitelisted and self.whitelist_force_relay):
            return
        if self._initial_download() or self.blocks_only:
            rate = MAX_MONEY
        else:
            rate = int(self.mempool.min_fee_rate().per_k)
        # Core: out of initial download, the MAX_MONEY filter is lifted at once, not minutes later.
        if now < st.next_feefilter and not (st.feefilter_sent == MAX_MONEY and rate != MAX_MONEY):
            return
        if rate != st.feefilter_sent:
            peer.send(msg.FeeFilter(rate))
            st.feefilter_sent = rate
        st.next_feefilter = now + random.expovariate(1 / AVG_FEEFILTER_BROADCAST_INTERVAL)

    # --- incoming --------------------------------------------------------------------------------------
    def _already_have(self, txid: bytes) -> bool:
        """Core: AlreadyHave for transactions."""
        return txid in self.recent_rejects or txid in self.orphans or \
            self.mempool.get_transaction(txid) is not None

    def relay_allowed(self, peer: Peer) -> bool:
        """False when -blocksonly forbids this peer's transactions (Core: `!fRelayTxes &&
        (!pfrom->fWhitelisted || !GetBoolArg("-whitelistrelay"))`)."""
        return not self.blocks_only or (peer.whitelisted and self.whitelist_relay)

    def on_tx_inv(self, peer: Peer, txids: list[bytes]) -> None:
        """Core: the inv branch for transactions; each becomes known to the peer (AddInventoryKnown) even
        when it is refused under -blocksonly or not asked for during initial download."""
        st = self._st(peer)
        allowed = self.relay_allowed(peer)
        initial_download = allowed and self._initial_download()
        now = self.clock()
        wanted = []
        for txid in txids:
            st.known.add(txid)
            if not allowed:
                log_print(logger, "net", "transaction (%s) inv sent in violation of protocol peer=%d",
                          txid[::-1].hex(), peer.id)
                continue
            if initial_download or self._already_have(txid):
                continue
            asked = self.requested.get(txid)
            if asked is not None and now - asked[1] < GETDATA_TX_INTERVAL:
                continue
            self.requested[txid] = (peer.id, now)
            wanted.append(msg.Inventory(MSG_WITNESS_TX, txid))
        if wanted:
            peer.send(msg.GetData(tuple(wanted)))

    def serve(self, peer: Peer, item: msg.Inventory) -> bool:
        """getdata for a transaction: from the mempool, or False (notfound)."""
        tx = self.mempool.get_transaction(item.hash)
        if tx is None:
            return False
        if item.type & MSG_TYPE_MASK == MSG_TX and item.type != MSG_WITNESS_TX:
            peer.send_payload("tx", tx.serialize(False))
        else:
            peer.send(msg.TxMessage(tx))
        return True

    def send_mempool(self, peer: Peer) -> None:
        """Core: the `mempool` message's answer (fSendMempool), an inv of the pool above the peer's
        feefilter, in MAX_INV_SZ batches; what it lists is no longer queued for the trickle."""
        st = self._st(peer)
        pool = self.mempool.pool
        with pool.lock:
            rates = [(txid, entry.fee * 1000 // max(entry.vsize, 1)) for txid, entry in pool.entries.items()]
        items: list[msg.Inventory] = []
        for txid, rate in rates:
            st.to_send.pop(txid, None)
            if peer.fee_filter and rate < peer.fee_filter:
                continue
            st.known.add(txid)
            items.append(msg.Inventory(MSG_TX, txid))
        for i in range(0, len(items), MAX_INV_SZ):
            peer.send(msg.Inv(tuple(items[i:i + MAX_INV_SZ])))
        log_print(logger, "net", "mempool request: %d of %d transactions announced to peer=%d",
                  len(items), len(rates), peer.id)

    # --- the chain moved -------------------------------------------------------------------------------
    def _on_block_any_thread(self, block: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.erase_orphans_for_block, block)

    def erase_orphans_for_block(self, block: Any) -> None:
        """Core: EraseOrphansForBlock, orphans the block confirmed or made impossible (a spent input)."""
        spent = {txin.prevout for tx in block.vtx for txin in tx.vin}
        confirmed = {tx.txid for tx in block.vtx}
        erased = [t for t, o in self.orphans.items()
                  if t in confirmed or any(txin.prevout in spent for txin in o.tx.vin)]
        for txid in erased:
            del self.orphans[txid]
        if erased:
            log_print(logger, "mempool", "Erased %d orphan tx included or conflicted by block", len(erased))

    async def on_tx(self, peer: Peer, tx: Transaction) -> None:
        if not self.relay_allowed(peer):
            log_print(logger, "net", "transaction sent in violation of protocol peer=%d", peer.id)
            return
        txid = tx.txid
        self._st(peer).known.add(txid)
        self.requested.pop(txid, None)
        if self._already_have(txid):
            self._force_relay(peer, tx, None)
            return
        result = await self.loop.run_in_executor(None, self.mempool.accept, tx)
        if result.accepted:
            log_print(logger, "mempool", "AcceptToMemoryPool: peer=%d: accepted %s (poolsz %d txn)",
                      peer.id, tx.txid_hex, len(self.mempool.pool))
            peer.stats.last_tx_time = self.clock()
            await self._process_orphans(txid)
        elif result.missing_inputs:
            self._add_orphan(peer, tx)
        else:
            if not result.state.corruption_possible:
                self.recent_rejects.add(txid)
            self._force_relay(peer, tx, result.state)
            log_print(logger, "mempool", "%s from peer=%d was not accepted: %s", tx.txid_hex, peer.id,
                      result.reject_reason)
            if result.state.dos > 0:
                peer.misbehaving(result.state.dos, f"invalid transaction: {result.reject_reason}")

    def _force_relay(self, peer: Peer, tx: Transaction, state: ValidationState | None) -> None:
        """Core: -whitelistforcerelay in ProcessMessage("tx"), for a transaction that was neither accepted
        nor an orphan: already had (`state` None) or rejected. Announced unless its rejection carries a
        DoS score. As in Core, the trickle still skips what the mempool does not hold, so a rejected
        transaction is logged as force-relayed but reaches no peer."""
        if not (peer.whitelisted and self.whitelist_force_relay):
            return
        if state is not None and state.is_invalid() and state.dos > 0:
            logger.info("Not relaying invalid transaction %s from whitelisted peer=%d (%s)", tx.txid_hex,
                        peer.id, state)
            return
        logger.info("Force relaying tx %s from whitelisted peer=%d", tx.txid_hex, peer.id)
        self._queue(tx.txid, self._fee_rate(tx.txid))

    # --- orphans ---------------------------------------------------------------------------------------
    def _add_orphan(self, peer: Peer, tx: Transaction) -> None:
        """Core: AddOrphanTx, then ask the peer for the missing parents."""
        parents = {i.prevout.txid for i in tx.vin}
        if any(p in self.recent_rejects for p in parents):
            self.recent_rejects.add(tx.txid)  # Core: a parent was rejected, so is the child
            return
        if tx.weight > MAX_STANDARD_TX_WEIGHT:
            log_print(logger, "mempool", "ignoring large orphan tx (size: %d, hash: %s)", tx.weight,
                      tx.txid_hex)
            return
        self.orphans[tx.txid] = OrphanTx(tx, peer.id, self.clock() + ORPHAN_TX_EXPIRE_TIME)
        self._limit_orphans()
        log_print(logger, "mempool", "stored orphan tx %s (mapsz %d)", tx.txid_hex, len(self.orphans))
        self.on_tx_inv(peer, [p for p in parents if not self._already_have(p)])

    def _limit_orphans(self) -> None:
        """Core: LimitOrphanTxSize, expired ones first, then random evictions."""
        now = self.clock()
        for txid in [t for t, o in self.orphans.items() if o.expires <= now]:
            del self.orphans[txid]
        while len(self.orphans) > MAX_ORPHAN_TRANSACTIONS:
            del self.orphans[random.choice(list(self.orphans))]

    async def _process_orphans(self, parent: bytes) -> None:
        """Core: the orphan work queue, children of each newly accepted transaction."""
        queue = [parent]
        while queue:
            txid = queue.pop(0)
            children = [o for o in self.orphans.values() if any(i.prevout.txid == txid for i in o.tx.vin)]
            for orphan in children:
                child = orphan.tx
                result = await self.loop.run_in_executor(None, self.mempool.accept, child)
                if result.missing_inputs:
                    continue
                self.orphans.pop(child.txid, None)
                if result.accepted:
                    queue.append(child.txid)
                elif not result.state.corruption_possible:
                    self.recent_rejects.add(child.txid)

