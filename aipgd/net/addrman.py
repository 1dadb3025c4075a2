"""AddrMan: the book of peer addresses, in Core's new/tried tables, persisted to peers.dat.

Owns Core's stochastic address manager (Core: addrman.h/.cpp): 1024 "new" buckets chosen by the
source's group, 256 "tried" buckets chosen by the address' group, 64 slots each, all placed by
sha256d hashes keyed with a secret, so that no peer can aim addresses at chosen slots. peers.dat
has Core's layout (message start, CAddrMan serialization, sha256d). Addresses are keyed by IP and
port (Core 0.21+; 0.15 keyed by IP). It must never open connections: the ConnectionManager does.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_i32,
    ser_i64,
    ser_u8,
    ser_u32,
    ser_u64,
    ser_var_bytes,
)
from aipgd.log import log_print
from aipgd.net.banman import write_file_atomically
from aipgd.net.netaddress import NetAddr, Service

logger = logging.getLogger(__name__)

PEERS_FILENAME = "peers.dat"
# Core: addrman.h ADDRMAN_* constants.
TRIED_BUCKET_COUNT = 256
NEW_BUCKET_COUNT = 1024
BUCKET_SIZE = 64
TRIED_BUCKETS_PER_GROUP = 8
NEW_BUCKETS_PER_SOURCE_GROUP = 64
NEW_BUCKETS_PER_ADDRESS = 8
HORIZON_DAYS = 30
RETRIES = 3
MAX_FAILURES = 10
MIN_FAIL_DAYS = 7
GETADDR_MAX_PCT = 23
GETADDR_MAX = 2500
_FORMAT_VERSION = 1
# What we write as each record's CAddress nVersion (Core writes its CLIENT_VERSION; readers ignore it).
_DISK_CLIENT_VERSION = 10000


def _cheap_hash(*parts: bytes) -> int:
    """Core: CHashWriter(...).GetHash().GetCheapHash(), the first 8 bytes of sha256d, little-endian."""
    return int.from_bytes(sha256d(b"".join(parts))[:8], "little")


@dataclass(slots=True)
class AddrInfo:
    service: Service
    services: int
    time: int
    source: NetAddr
    last_success: int = 0
    attempts: int = 0
    last_try: int = 0  # memory only
    last_count_attempt: int = 0  # memory only
    ref_count: int = 0
    in_tried: bool = False

    def tried_bucket(self, key: bytes) -> int:
        h1 = _cheap_hash(key, ser_var_bytes(self.service.key()))
        h2 = _cheap_hash(key, ser_var_bytes(self.service.addr.group()), ser_u64(h1 % TRIED_BUCKETS_PER_GROUP))
        return h2 % TRIED_BUCKET_COUNT

    def new_bucket(self, key: bytes, source: NetAddr | None = None) -> int:
        src_group = ser_var_bytes((source or self.source).group())
        h1 = _cheap_hash(key, ser_var_bytes(self.service.addr.group()), src_group)
        h2 = _cheap_hash(key, src_group, ser_u64(h1 % NEW_BUCKETS_PER_SOURCE_GROUP))
        return h2 % NEW_BUCKET_COUNT

    def bucket_position(self, key: bytes, new: bool, bucket: int) -> int:
        h = _cheap_hash(key, b"N" if new else b"K", ser_i32(bucket), ser_var_bytes(self.service.key()))
        return h % BUCKET_SIZE

    def is_terrible(self, now: int) -> bool:
        """Core: CAddrInfo::IsTerrible."""
        if self.last_try and self.last_try >= now - 60:
            return False
        if self.time > now + 10 * 60:
            return True
        if self.time == 0 or now - self.time > HORIZON_DAYS * 86400:
            return True
        if self.last_success == 0 and self.attempts >= RETRIES:
            return True
        return now - self.last_success > MIN_FAIL_DAYS * 86400 and self.attempts >= MAX_FAILURES

    def chance(self, now: int) -> float:
        chance = 1.0
        if max(now - self.last_try, 0) < 600:
            chance *= 0.01
        return chance * math.pow(0.66, min(self.attempts, 8))

    def serialize(self) -> bytes:
        return (ser_i32(_DISK_CLIENT_VERSION) + ser_u32(self.time) + ser_u64(self.services)
                + self.service.serialize() + self.source.ip + ser_i64(self.last_success)
                + ser_i32(self.attempts))

    @classmethod
    def read(cls, r: ByteReader) -> AddrInfo:
        r.i32("addrinfo client version")
        t = r.u32("addrinfo time")
        services = r.u64("addrinfo services")
        service = Service.read(r)
        source = NetAddr.read(r)
        return cls(service, services, t, source, r.i64("addrinfo last success"), r.i32("addrinfo attempts"))


_ADDRINFO_SIZE = 4 + 4 + 8 + 18 + 16 + 8 + 4


class AddrMan:
    name = "address manager"

    def __init__(self, path: Path | None, magic: bytes, rng: random.Random | None = None) -> None:
        self.path = path
        self.magic = magic
        self._rng = rng or random.SystemRandom()
        self._clear()

    def _clear(self) -> None:
        self.key = bytes(self._rng.getrandbits(8) for _ in range(32))
        self._info: dict[int, AddrInfo] = {}
        self._by_service: dict[Service, int] = {}
        self._random: list[int] = []
        self._next_id = 0
        self.n_new = 0
        self.n_tried = 0
        self._new: list[list[int]] = [[-1] * BUCKET_SIZE for _ in range(NEW_BUCKET_COUNT)]
        self._tried: list[list[int]] = [[-1] * BUCKET_SIZE for _ in range(TRIED_BUCKET_COUNT)]
        self._last_good = 1

    def __len__(self) -> int:
        return len(self._random)

    @staticmethod
    def now() -> int:
        return int(time.time())

    # --- component -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.path is None:
            return
        if not self.path.exists():
            logger.info("Invalid or missing peers.dat; recreating")
            return
        try:
            self.load_bytes(self.path.read_bytes())
        except (DeserializationError, OSError) as exc:
            logger.warning("Invalid or missing peers.dat (%s); recreating", exc)
            self._clear()
            return
        logger.info("Loaded %d addresses from peers.dat", len(self))

    def stop(self) -> None:
        self.dump()

    def dump(self) -> None:
        if self.path is None:
            return
        write_file_atomically(self.path, self.dump_bytes())
        log_print(logger, "addrman", "Flushed %d addresses to peers.dat", len(self))

    # --- table mechanics -----------------------------------------------------------------------------
    def _find(self, service: Service) -> tuple[int, AddrInfo] | tuple[None, None]:
        n = self._by_service.get(service)
        return (n, self._info[n]) if n is not None else (None, None)

    def _create(self, info: AddrInfo) -> int:
        n = self._next_id
        self._next_id += 1
        self._info[n] = info
        self._by_service[info.service] = n
        self._random.append(n)
        return n

    def _delete(self, n: int) -> None:
        info = self._info.pop(n)
        del self._by_service[info.service]
        self._random.remove(n)
        self.n_new -= 1

    def _clear_new(self, bucket: int, pos: int) -> None:
        n = self._new[bucket][pos]
        if n == -1:
            return
        info = self._info[n]
        info.ref_count -= 1
        self._new[bucket][pos] = -1
        if info.ref_count == 0:
            self._delete(n)

    def _make_tried(self, n: int) -> None:
        info = self._info[n]
        for bucket in range(NEW_BUCKET_COUNT):
            pos = info.bucket_position(self.key, True, bucket)
            if self._new[bucket][pos] == n:
                self._new[bucket][pos] = -1
                info.ref_count -= 1
        self.n_new -= 1
        k_bucket = info.tried_bucket(self.key)
        k_pos = info.bucket_position(self.key, False, k_bucket)
        evicted = self._tried[k_bucket][k_pos]
        if evicted != -1:
            # Core: the old tried entry goes back to the new table.
            old = self._info[evicted]
            old.in_tried = False
            self._tried[k_bucket][k_pos] = -1
            self.n_tried -= 1
            u_bucket = old.new_bucket(self.key)
            u_pos = old.bucket_position(self.key, True, u_bucket)
            self._clear_new(u_bucket, u_pos)
            old.ref_count = 1
            self._new[u_bucket][u_pos] = evicted
            self.n_new += 1
        self._tried[k_bucket][k_pos] = n
        self.n_tried += 1
        info.in_tried = True

    # --- public operations (Core: Add, Good, Attempt, Select, GetAddr, Connected) ---------------------
    def add(self, addresses: list[tuple[Service, int, int]], source: NetAddr, time_penalty: int = 0) -> int:
        """Add (service, services, time) triples learnt from `source`; returns how many were new."""
        return sum(self._add_one(s, sv, t, source, time_penalty) for s, sv, t in addresses)

    def _add_one(self, service: Service, services: int, t: int, source: NetAddr, penalty: int) -> bool:
        if not service.addr.is_routable():
            return False
        if service.addr == source:
            penalty = 0
        n, info = self._find(service)
        now = self.now()
        is_new = False
        if info is not None and n is not None:
            currently_online = now - t < 24 * 3600
            update_interval = 3600 if currently_online else 24 * 3600
            if t and (not info.time or info.time < t - update_interval - penalty):
                info.time = max(0, t - penalty)
            info.services |= services
            if not t or (info.time and info.time >= t):
                return False
            if info.in_tried or info.ref_count == NEW_BUCKETS_PER_ADDRESS:
                return False
            # Core: stochastic test, 2^refcount times harder to gain another reference.
            if self._rng.randrange(1 << info.ref_count) != 0:
                return False
        else:
            info = AddrInfo(service, services, max(0, t - penalty), source)
            n = self._create(info)
            self.n_new += 1
            is_new = True
        u_bucket = info.new_bucket(self.key, source)
        u_pos = info.bucket_position(self.key, True, u_bucket)
        if self._new[u_bucket][u_pos] != n:
            insert = self._new[u_bucket][u_pos] == -1
            if not insert:
                existing = self._info[self._new[u_bucket][u_pos]]
                if existing.is_terrible(now) or (existing.ref_count > 1 and info.ref_count == 0):
                    insert = True
            if insert:
                self._clear_new(u_bucket, u_pos)
                info.ref_count += 1
                self._new[u_bucket][u_pos] = n
            elif info.ref_count == 0:
                self._delete(n)
        return is_new

    def good(self, service: Service, when: int | None = None) -> None:
        n, info = self._find(service)
        if info is None or n is None:
            return
        now = self.now() if when is None else when
        self._last_good = now
        info.last_success = now
        info.last_try = now
        info.attempts = 0
        if not info.in_tried:
            self._make_tried(n)

    def attempt(self, service: Service, count_failure: bool = True) -> None:
        _, info = self._find(service)
        if info is None:
            return
        now = self.now()
        info.last_try = now
        if count_failure and info.last_count_attempt < self._last_good:
            info.last_count_attempt = now
            info.attempts += 1

    def connected(self, service: Service) -> None:
        _, info = self._find(service)
        if info is not None and self.now() - info.time > 20 * 60:
            info.time = self.now()

    def set_services(self, service: Service, services: int) -> None:
        _, info = self._find(service)
        if info is not None:
            info.services = services

    def select(self, new_only: bool = False) -> AddrInfo | None:
        """Core: Select_, a random entry biased to the tried table and to good chances."""
        if not self._random or (new_only and self.n_new == 0):
            return None
        now = self.now()
        use_tried = self.n_tried > 0 and (new_only is False) and (self.n_new == 0 or self._rng.random() < 0.5)
        table, count = (self._tried, TRIED_BUCKET_COUNT) if use_tried else (self._new, NEW_BUCKET_COUNT)
        if (self.n_tried if use_tried else self.n_new) == 0:
            return None
        factor = 1.0
        for _ in range(100_000):
            bucket = self._rng.randrange(count)
            pos = self._rng.randrange(BUCKET_SIZE)
            while table[bucket][pos] == -1:
                bucket = self._rng.randrange(count)
                pos = self._rng.randrange(BUCKET_SIZE)
            info = self._info[table[bucket][pos]]
            if self._rng.random() < factor * info.chance(now):
                return info
            factor *= 1.2
        return None

    def get_addr(self) -> list[AddrInfo]:
        """Core: GetAddr_, up to 23% (at most 2500) random entries that are not terrible."""
        wanted = min(GETADDR_MAX, GETADDR_MAX_PCT * len(self._random) // 100)
        now = self.now()
        out: list[AddrInfo] = []
        for n in self._rng.sample(self._random, len(self._random)):
            if len(out) >= wanted:
                break
            info = self._info[n]
            if not info.is_terrible(now):
                out.append(info)
        return out

    def entries(self) -> list[AddrInfo]:
        return [self._info[n] for n in self._random]

    # --- peers.dat -----------------------------------------------------------------------------------
    def serialize(self) -> bytes:
        out = bytearray(ser_u8(_FORMAT_VERSION) + ser_u8(32) + self.key)
        new_ids = sorted(n for n, i in self._info.items() if i.ref_count)
        tried_ids = sorted(n for n, i in self._info.items() if i.in_tried)
        out += ser_i32(len(new_ids)) + ser_i32(len(tried_ids)) + ser_i32(NEW_BUCKET_COUNT ^ (1 << 30))
        index_of = {n: i for i, n in enumerate(new_ids)}
        for n in new_ids:
            out += self._info[n].serialize()
        for n in tried_ids:
            out += self._info[n].serialize()
        for bucket in self._new:
            members = [index_of[n] for n in bucket if n != -1]
            out += ser_i32(len(members)) + b"".join(ser_i32(i) for i in members)
        return bytes(out)

    def deserialize(self, r: ByteReader) -> None:
        """Core: CAddrMan::Unserialize; entries that collide are dropped, as Core does."""
        self._clear()
        version = r.u8("addrman version")
        if r.u8("addrman key size") != 32:
            raise r.error("addrman key", "incorrect keysize in addrman deserialization")
        self.key = r.read(32, "addrman key")
        n_new = r.i32("addrman nNew")
        n_tried = r.i32("addrman nTried")
        u_buckets = r.i32("addrman bucket count")
        if version != 0:
            u_buckets ^= 1 << 30
        if not 0 <= n_new <= NEW_BUCKET_COUNT * BUCKET_SIZE:
            raise r.error("addrman nNew", "nNew exceeds limit")
        if not 0 <= n_tried <= TRIED_BUCKET_COUNT * BUCKET_SIZE:
            raise r.error("addrman nTried", "nTried exceeds limit")
        if n_new + n_tried > r.remaining // _ADDRINFO_SIZE:
            raise r.error("addrman entries", "counts exceed the file")
        layout_known = version == _FORMAT_VERSION and u_buckets == NEW_BUCKET_COUNT
        for _ in range(n_new):
            info = AddrInfo.read(r)
            n = self._create(info)
            if not layout_known:
                bucket = info.new_bucket(self.key)
                pos = info.bucket_position(self.key, True, bucket)
                if self._new[bucket][pos] == -1:
                    self._new[bucket][pos] = n
                    info.ref_count += 1
        self.n_new = n_new
        for _ in range(n_tried):
            info = AddrInfo.read(r)
            bucket = info.tried_bucket(self.key)
            pos = info.bucket_position(self.key, False, bucket)
            if self._tried[bucket][pos] == -1 and info.service not in self._by_service:
                info.in_tried = True
                self._tried[bucket][pos] = self._create(info)
                self.n_tried += 1
        if not 0 <= u_buckets <= NEW_BUCKET_COUNT * 4:
            raise r.error("addrman bucket count", "bucket count out of range")
        for bucket in range(u_buckets):
            size = r.i32("addrman bucket size")
            if not 0 <= size <= r.remaining // 4:
                raise r.error("addrman bucket", "bucket size exceeds the file")
            for _ in range(size):
                index = r.i32("addrman bucket entry")
                if layout_known and 0 <= index < n_new and index in self._info:
                    info = self._info[index]
                    pos = info.bucket_position(self.key, True, bucket)
                    if self._new[bucket][pos] == -1 and info.ref_count < NEW_BUCKETS_PER_ADDRESS:
                        info.ref_count += 1
                        self._new[bucket][pos] = index
        lost = [n for n, i in self._info.items() if not i.in_tried and i.ref_count == 0]
        for n in lost:
            self._delete(n)
        if lost:
            log_print(logger, "addrman", "addrman lost %d new addresses due to collisions", len(lost))

    def dump_bytes(self) -> bytes:
        body = self.magic + self.serialize()
        return body + sha256d(body)

    def load_bytes(self, data: bytes) -> None:
        if len(data) < 36 or sha256d(data[:-32]) != data[-32:]:
            raise DeserializationError("peers.dat", 0, "checksum mismatch")
        r = ByteReader(data, end=len(data) - 32)
        if r.read(4, "message start") != self.magic:
            raise DeserializationError("peers.dat", 0, "invalid network magic number")
        self.deserialize(r)
        r.expect_end("peers.dat")

