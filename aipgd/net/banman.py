"""BanMan: banned subnets with expiry, persisted to banlist.dat (Core: BanMan / CBanDB).

Owns the ban map, its expiry sweep, and the file: Core's layout (message start, the serialized
map of CSubNet -> CBanEntry, then sha256d of everything before), written to a temporary file and
renamed over. It must never decide who misbehaved: peers and the ConnectionManager do.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import ByteReader, DeserializationError, ser_compact_size, ser_i32, ser_i64, ser_u8
from aipgd.log import log_print
from aipgd.net.netaddress import NetAddr, SubNet

logger = logging.getLogger(__name__)

BANLIST_FILENAME = "banlist.dat"
DEFAULT_MISBEHAVING_BANTIME = 60 * 60 * 24  # Core: 24 hours
BAN_REASON_UNKNOWN = 0
BAN_REASON_NODE_MISBEHAVING = 1
BAN_REASON_MANUALLY_ADDED = 2
_BAN_ENTRY_VERSION = 1


@dataclass(frozen=True, slots=True)
class BanEntry:
    create_time: int
    ban_until: int
    reason: int = BAN_REASON_UNKNOWN

    @property
    def reason_text(self) -> str:
        return {BAN_REASON_NODE_MISBEHAVING: "node misbehaving",
                BAN_REASON_MANUALLY_ADDED: "manually added"}.get(self.reason, "unknown")


def serialize_banmap(magic: bytes, bans: dict[SubNet, BanEntry]) -> bytes:
    body = bytearray(magic)
    body += ser_compact_size(len(bans))
    for subnet in sorted(bans):
        entry = bans[subnet]
        body += subnet.network.ip + subnet.mask + b"\x01"
        body += ser_i32(_BAN_ENTRY_VERSION) + ser_i64(entry.create_time) + ser_i64(entry.ban_until)
        body += ser_u8(entry.reason)
    return bytes(body) + sha256d(bytes(body))


def deserialize_banmap(magic: bytes, data: bytes) -> dict[SubNet, BanEntry]:
    """Parse banlist.dat; raises DeserializationError on a wrong network, corruption or bad checksum."""
    if len(data) < 36 or sha256d(data[:-32]) != data[-32:]:
        raise DeserializationError("banlist.dat", 0, "checksum mismatch")
    r = ByteReader(data, end=len(data) - 32)
    if r.read(4, "message start") != magic:
        raise DeserializationError("banlist.dat", 0, "invalid network magic number")
    bans: dict[SubNet, BanEntry] = {}

    def read_one(rr: ByteReader) -> None:
        network = NetAddr(rr.read(16, "ban network"))
        mask = rr.read(16, "ban netmask")
        valid = rr.u8("ban subnet valid")
        rr.i32("ban entry version")
        entry = BanEntry(rr.i64("ban create time"), rr.i64("ban until"), rr.u8("ban reason"))
        if valid:
            bans[SubNet(network, mask)] = entry
    r.vector(read_one, "ban entries", 16 + 16 + 1 + 4 + 8 + 8 + 1)
    r.expect_end("banlist.dat")
    return bans


def write_file_atomically(path: Path, data: bytes) -> None:
    """Core: SerializeFileDB, a temporary file renamed over the old one after fsync."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class BanMan:
    name = "ban list"

    def __init__(self, path: Path, magic: bytes, default_ban_time: int = DEFAULT_MISBEHAVING_BANTIME) -> None:
        self.path = path
        self.magic = magic
        self.default_ban_time = default_ban_time
        self._bans: dict[SubNet, BanEntry] = {}
        self._dirty = False

    @staticmethod
    def now() -> int:
        return int(time.time())

    def start(self) -> None:
        self.load()

    def stop(self) -> None:
        self.dump()

    def load(self) -> None:
        if not self.path.exists():
            log_print(logger, "net", "Invalid or missing banlist.dat; recreating")
            self._dirty = True
            return
        try:
            self._bans = deserialize_banmap(self.magic, self.path.read_bytes())
        except (DeserializationError, OSError) as exc:
            logger.warning("Invalid or missing banlist.dat (%s); recreating", exc)
            self._bans = {}
            self._dirty = True
            return
        self.sweep()
        log_print(logger, "net", "Loaded %d banned node ips/subnets from banlist.dat", len(self._bans))

    def dump(self) -> None:
        self.sweep()
        if not self._dirty:
            return
        write_file_atomically(self.path, serialize_banmap(self.magic, self._bans))
        self._dirty = False
        log_print(logger, "net", "Flushed %d banned node ips/subnets to banlist.dat", len(self._bans))

    def ban(self, subnet: SubNet, reason: int = BAN_REASON_NODE_MISBEHAVING, ban_time: int | None = None,
            absolute: bool = False) -> None:
        now = self.now()
        seconds = self.default_ban_time if ban_time is None or ban_time <= 0 else ban_time
        until = seconds if absolute else now + seconds
        current = self._bans.get(subnet)
        if current is None or current.ban_until < until:
            self._bans[subnet] = BanEntry(now, until, reason)
            self._dirty = True
        self.dump()

    def unban(self, subnet: SubNet) -> bool:
        if self._bans.pop(subnet, None) is None:
            return False
        self._dirty = True
        self.dump()
        return True

    def clear(self) -> None:
        self._bans.clear()
        self._dirty = True
        self.dump()

    def is_banned(self, addr: NetAddr) -> bool:
        now = self.now()
        return any(entry.ban_until > now and subnet.matches(addr) for subnet, entry in self._bans.items())

    def sweep(self) -> None:
        now = self.now()
        expired = [s for s, e in self._bans.items() if e.ban_until <= now]
        for subnet in expired:
            del self._bans[subnet]
            self._dirty = True
            log_print(logger, "net", "Removed banned node ip/subnet from banlist.dat: %s", subnet)

    def banned(self) -> dict[SubNet, BanEntry]:
        self.sweep()
        return dict(self._bans)
