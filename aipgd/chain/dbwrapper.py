"""A thin LevelDB wrapper with Core's options, value obfuscation and operator-readable errors.

Owns opening/closing a plyvel database (Core: CDBWrapper), the 8-byte XOR obfuscation key of the
chainstate, ordered atomic batches written with sync, and turning LevelDB failures into
DatabaseError messages that say what to do. It must never know what the keys mean.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import plyvel

from aipgd.errors import InitError
from aipgd.log import log_print

logger = logging.getLogger(__name__)

# Core: CDBWrapper::OBFUSCATE_KEY_KEY, a serialized std::string "\0obfuscate_key" (length 14).
OBFUSCATE_KEY_KEY = b"\x0e\x00obfuscate_key"
OBFUSCATE_KEY_NUM_BYTES = 8

REINDEX_ADVICE = (
    "The block database may be corrupt. Restart with -reindex to rebuild the block index and the "
    "chainstate from the blk*.dat files."
)
REINDEX_CHAINSTATE_ADVICE = (
    "The chainstate database may be corrupt. Restart with -reindex-chainstate to rebuild it from the "
    "stored blocks (or with -reindex if that fails too)."
)


class DatabaseError(InitError):
    """LevelDB could not be opened, read or written."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class LevelDB:
    """One LevelDB database (Core: CDBWrapper)."""

    def __init__(self, path: Path, *, label: str, obfuscate: bool, cache_bytes: int,
                 advice: str = REINDEX_ADVICE, wipe: bool = False) -> None:
        self.path = path
        # -reindex / -reindex-chainstate: destroy the old database before opening (it may not open).
        self.wipe_on_open = wipe
        self.label = label
        # What the operator should do when this database is found corrupt.
        self.advice = advice
        self.obfuscate = obfuscate
        self.cache_bytes = cache_bytes
        self._db: plyvel.DB | None = None
        self._xor_key = bytes(OBFUSCATE_KEY_NUM_BYTES)
        # The key repeated to each value length seen, as an integer (values are XORed as integers).
        self._xor_masks: dict[int, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        if self.wipe_on_open:
            self.wipe_on_open = False
            self._destroy()
        try:
            # Core: GetOptions (half the cache for blocks, a quarter for the write buffer, bloom filter
            # 10 bits, no compression, 64 open files) and paranoid checks so corruption is found early.
            self._db = plyvel.DB(
                str(self.path), create_if_missing=True, paranoid_checks=True, compression=None,
                lru_cache_size=max(self.cache_bytes // 2, 1 << 20),
                write_buffer_size=max(self.cache_bytes // 4, 1 << 20),
                bloom_filter_bits=10, max_open_files=64,
            )
        except plyvel.CorruptionError as exc:
            raise DatabaseError(
                f"Error opening {self.label} database {self.path}: {_describe(exc)}. {self.advice}"
            ) from exc
        except plyvel.IOError as exc:
            raise DatabaseError(
                f"Error opening {self.label} database {self.path}: {_describe(exc)}. "
                "Check the directory's permissions and free disk space."
            ) from exc
        except plyvel.Error as exc:
            raise DatabaseError(
                f"Error opening {self.label} database {self.path}: {_describe(exc)}. {self.advice}"
            ) from exc
        logger.info("Opened LevelDB successfully")
        self._init_obfuscation()

    def _init_obfuscation(self) -> None:
        """Core: CDBWrapper constructor. A new, empty database gets a random key; old data keeps its own."""
        self._xor_masks = {}
        stored = self._raw_get(OBFUSCATE_KEY_KEY)
        if stored is not None:
            if len(stored) != 1 + OBFUSCATE_KEY_NUM_BYTES or stored[0] != OBFUSCATE_KEY_NUM_BYTES:
                raise DatabaseError(
                    f"{self.label} database {self.path} has a malformed obfuscation key. {self.advice}")
            self._xor_key = stored[1:]
        elif self.obfuscate and self.is_empty():
            key = os.urandom(OBFUSCATE_KEY_NUM_BYTES)
            # Stored un-obfuscated (serialized as a byte vector) so it can be read back before use.
            self._raw_write_batch([(OBFUSCATE_KEY_KEY, bytes([OBFUSCATE_KEY_NUM_BYTES]) + key)])
            self._xor_key = key
            logger.info("Wrote new obfuscate key for %s: %s", self.path, key.hex())
        logger.info("Using obfuscation key for %s: %s", self.path, self._xor_key.hex())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def wipe(self) -> None:
        """Destroy every record and start an empty database (Core: CDBWrapper with fWipe, used by
        -reindex); an obfuscated database gets a new key."""
        self.close()
        self._destroy()
        self.open()

    def _destroy(self) -> None:
        logger.info("Wiping LevelDB in %s", self.path)
        try:
            plyvel.destroy_db(str(self.path))
        except plyvel.Error as exc:
            raise self._fatal("wipe", exc) from exc

    @property
    def db(self) -> plyvel.DB:
        if self._db is None:
            raise DatabaseError(f"{self.label} database {self.path} is not open")
        return self._db

    # -- reads ---------------------------------------------------------------------------------

    def _xor(self, value: bytes) -> bytes:
        key = self._xor_key
        if not any(key):
            return value
        size = len(value)
        mask = self._xor_masks.get(size)
        if mask is None:
            reps = size // len(key) + 1
            mask = self._xor_masks[size] = int.from_bytes((key * reps)[:size], "little")
        return (int.from_bytes(value, "little") ^ mask).to_bytes(size, "little")

    def _raw_get(self, key: bytes) -> bytes | None:
        db = self._db
        if db is None:
            raise DatabaseError(f"{self.label} database {self.path} is not open")
        try:
            value: bytes | None = db.get(key)
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc
        return value

    def get(self, key: bytes) -> bytes | None:
        value = self._raw_get(key)
        return None if value is None else self._xor(value)

    def exists(self, key: bytes) -> bool:
        db = self._db
        if db is None:
            raise DatabaseError(f"{self.label} database {self.path} is not open")
        try:
            return db.get(key) is not None
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc

    def exists_any(self, keys: Iterable[bytes]) -> bool:
        db = self._db
        if db is None:
            raise DatabaseError(f"{self.label} database {self.path} is not open")
        get = db.get
        try:
            for key in keys:
                if get(key) is not None:
                    return True
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc
        return False

    def is_empty(self) -> bool:
        try:
            with self.db.iterator(include_value=False) as it:
                for _ in it:
                    return False
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc
        return True

    def iterate_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        try:
            with self.db.iterator(prefix=prefix) as it:
                for key, value in it:
                    yield key, self._xor(value)
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc

    def has_prefix(self, prefix: bytes) -> bool:
        try:
            with self.db.iterator(prefix=prefix, include_value=False) as it:
                for _ in it:
                    return True
        except plyvel.Error as exc:
            raise self._fatal("read from", exc) from exc
        return False

    # -- writes --------------------------------------------------------------------------------

    def write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool = True) -> None:
        """Apply `ops` (None value = erase) atomically and in order (Core: CDBWrapper::WriteBatch)."""
        self._raw_write_batch(ops, sync, obfuscated=True)

    def _raw_write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool = True, *,
                         obfuscated: bool = False) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            size = sum(len(k) + (len(v) if v is not None else 0) for k, v in ops)
            log_print(logger, "leveldb", "Writing batch of %d operations (%d bytes) to %s", len(ops), size,
                      self.path)
        xor = self._xor if obfuscated and any(self._xor_key) else None
        try:
            with self.db.write_batch(sync=sync) as batch:
                put, delete = batch.put, batch.delete
                for key, value in ops:
                    if value is None:
                        delete(key)
                    elif xor is None:
                        put(key, value)
                    else:
                        put(key, xor(value))
        except plyvel.Error as exc:
            raise self._fatal("write to", exc) from exc

    def _fatal(self, action: str, exc: BaseException) -> DatabaseError:
        # Core: HandleError ("Fatal LevelDB error") followed by AbortNode.
        text = _describe(exc)
        advice = self.advice if isinstance(exc, plyvel.CorruptionError) else (
            "Check free disk space and the directory's permissions.")
        return DatabaseError(f"Fatal LevelDB error: could not {action} {self.label} database "
                             f"{self.path}: {text}. {advice}")


class LevelDBStore:
    """A Node component over one LevelDB: open at start, close at stop, wipe for a rebuild, and
    corruption errors that name the database and the flag that repairs it (the LevelDB's advice)."""

    name = "database"

    def __init__(self, db: LevelDB) -> None:
        self._db = db

    @property
    def path(self) -> Path:
        return self._db.path

    def start(self) -> None:
        self._db.open()

    def stop(self) -> None:
        self._db.close()

    def wipe(self) -> None:
        """Start empty (Core: CDBWrapper with fWipe: -reindex, -reindex-chainstate)."""
        self._db.wipe()

    def _corrupt(self, what: str, detail: object) -> DatabaseError:
        return DatabaseError(f"Error reading {what} from the {self.name} {self.path}: {detail}. "
                             f"{self._db.advice}")
