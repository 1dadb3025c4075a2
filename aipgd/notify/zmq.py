"""ZMQ publishers, -zmqpubhashblock/-zmqpubhashtx/-zmqpubrawblock/-zmqpubrawtx=<address>
(Core: zmq/zmqnotificationinterface.cpp, zmqpublishnotifier.cpp).

Every message is three frames as Core sends them: the topic, the body, and the notifier's message
sequence number (4 bytes, little-endian). hashblock/rawblock announce each new tip (not during
initial block download, and not when the tip only moved back); hashtx/rawtx each transaction of a
connected block and each transaction the mempool accepts. Notifiers with the same
address share one PUB socket. Sends happen on one thread, the only one that touches the sockets.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

TOPICS = ("hashblock", "hashtx", "rawblock", "rawtx")
_STOP = object()


def zmq_addresses(get: Any) -> dict[str, str]:
    """{topic: address} for each -zmqpub<topic> set (Core: CZMQNotificationInterface::Create)."""
    out: dict[str, str] = {}
    for topic in TOPICS:
        address = get(f"zmqpub{topic}")
        if address:
            out[topic] = address
    return out


class ZMQNotifier:
    name = "ZMQ notifier"

    def __init__(self, addresses: dict[str, str], chainstate: Any) -> None:
        self.addresses = dict(addresses)
        self._cs = chainstate
        self._sequence = dict.fromkeys(self.addresses, 0)
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._context: Any = None
        self._sockets: dict[str, Any] = {}
        self._last_tip: bytes | None = None

    def start(self) -> None:
        import zmq

        from aipgd.errors import InitError

        self._context = zmq.Context()
        try:
            for topic, address in self.addresses.items():
                if address not in self._sockets:
                    sock = self._context.socket(zmq.PUB)
                    sock.setsockopt(zmq.LINGER, 0)
                    sock.bind(address)
                    self._sockets[address] = sock
                logger.info("zmq: Outbound message high water mark for %s at %s is default", topic, address)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise InitError(f"Unable to bind the ZMQ publisher to {address}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="aipg-zmq", daemon=True)
        self._thread.start()
        tip = self._cs.chain.tip
        self._last_tip = tip.block_hash if tip is not None else None
        self._cs.signals.subscribe(self)

    def stop(self) -> None:
        self._cs.signals.unsubscribe(self)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._sockets.clear()
        if self._context is not None:
            self._context.term()
            self._context = None

    def _publish(self, topic: str, body: bytes) -> None:
        address = self.addresses.get(topic)
        if address is None:
            return
        sequence = self._sequence[topic]
        self._sequence[topic] = (sequence + 1) & 0xFFFFFFFF
        self._queue.put((address, [topic.encode(), body, struct.pack("<I", sequence)]))

    # -- ChainState listener (called under the chain lock: only queue) -------------------------

    def block_connected(self, block: Any, index: Any) -> None:
        for tx in block.vtx:
            self._publish("hashtx", tx.txid[::-1])
            self._publish("rawtx", tx.serialize())

    def transaction_added(self, tx: Any) -> None:
        """Core: TransactionAddedToMempool, each transaction the mempool accepts."""
        self._publish("hashtx", tx.txid[::-1])
        self._publish("rawtx", tx.serialize())

    def updated_block_tip(self, tip: Any, fork: Any) -> None:
        previous = self._last_tip
        self._last_tip = tip.block_hash
        if self._cs.signals.initial_block_download(tip, self._cs.params, time.time()):
            return
        # Core: nothing when the new tip is the fork point (the chain only moved back).
        if previous is not None and tip.block_hash != previous:
            prev_index = self._cs.block_index.get(previous)
            if prev_index is not None and prev_index.get_ancestor(tip.height) is tip:
                return
        self._publish("hashblock", tip.block_hash[::-1])
        if "rawblock" in self.addresses:
            self._publish("rawblock", self._cs.read_block(tip).serialize())

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, tuple)
            address: str = item[0]
            frames: list[bytes] = item[1]
            try:
                self._sockets[address].send_multipart(frames)
            except Exception as exc:  # Core logs and disables the notifier; we log and go on
                logger.warning("zmq: send to %s failed: %s", address, exc)
