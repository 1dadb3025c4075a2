"""The node's PoUW record store: jobs, receipts and attestations in LevelDB (<datadir>/pouw/jobs).

Owns `JobStore`. Records are the objects' canonical encodings, keyed by their ids, plus two
indexes: job id -> receipt id, and receipt id -> the attestations about it. Every write is one
synced batch, so a crash leaves either the whole record or none. It must never return an object
that does not decode to the id it is stored under (a corrupt record is reported with the repair
advice, as the chain databases do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from aipgd.chain.dbwrapper import DatabaseError, LevelDB
from aipgd.core.serialize import DeserializationError
from aipgd.core.uint256 import hash_to_hex, hex_to_hash
from pouw.attestation import Attestation
from pouw.errors import PouwError
from pouw.jobspec import JobSpec
from pouw.receipt import Receipt

__all__ = ["JobStore", "parse_id"]

_JOB = b"j"
_RECEIPT = b"r"
_JOB_RECEIPT = b"J"
_ATTESTATION = b"a"
_RECEIPT_ATTESTATION = b"A"
_CACHE_BYTES = 8 << 20
T = TypeVar("T")


def parse_id(text: str) -> bytes | None:
    """An object id from its display hex (reversed, like txids), or None when malformed."""
    if len(text) != 64:
        return None
    try:
        return hex_to_hash(text)
    except ValueError:
        return None


class JobStore:
    """Jobs, receipts and attestations by id. Thread-safe (LevelDB is; the lock orders writes)."""

    name = "PoUW job database"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = LevelDB(path, label="PoUW job", obfuscate=False, cache_bytes=_CACHE_BYTES,
                           advice="Move the directory away to start with no job history (receipts "
                                  "are also kept by the peers that received them).")
        self._lock = threading.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db.open()

    def close(self) -> None:
        self._db.close()

    # --- writes --------------------------------------------------------------------------------------

    def put_job(self, job: JobSpec) -> None:
        with self._lock:
            self._db.write_batch([(_JOB + job.id, job.serialize())])

    def put_receipt(self, receipt: Receipt) -> bool:
        """Stores a receipt (and indexes it under its job); False when it was already known."""
        rid = receipt.id
        with self._lock:
            if self._db.exists(_RECEIPT + rid):
                return False
            self._db.write_batch([(_RECEIPT + rid, receipt.serialize()),
                                  (_JOB_RECEIPT + receipt.job_id, rid)])
        return True

    def put_attestation(self, attestation: Attestation) -> bool:
        aid = attestation.id
        with self._lock:
            if self._db.exists(_ATTESTATION + aid):
                return False
            self._db.write_batch([(_ATTESTATION + aid, attestation.serialize()),
                                  (_RECEIPT_ATTESTATION + attestation.receipt_id + aid, b"")])
        return True

    # --- reads ---------------------------------------------------------------------------------------

    def get_job(self, job_id: bytes) -> JobSpec | None:
        raw = self._raw(_JOB, job_id)
        return None if raw is None else self._decode(JobSpec.from_bytes, raw, job_id, "job")

    def get_receipt(self, receipt_id: bytes) -> Receipt | None:
        raw = self._raw(_RECEIPT, receipt_id)
        return None if raw is None else self._decode(Receipt.from_bytes, raw, receipt_id, "receipt")

    def receipt_for_job(self, job_id: bytes) -> Receipt | None:
        rid = self._db.get(_JOB_RECEIPT + job_id)
        return None if rid is None else self.get_receipt(rid)

    def get_attestation(self, attestation_id: bytes) -> Attestation | None:
        raw = self._raw(_ATTESTATION, attestation_id)
        if raw is None:
            return None
        return self._decode(Attestation.from_bytes, raw, attestation_id, "attestation")

    def attestations_for(self, receipt_id: bytes) -> list[Attestation]:
        prefix = _RECEIPT_ATTESTATION + receipt_id
        out = []
        for key, _ in self._db.iterate_prefix(prefix):
            found = self.get_attestation(key[len(prefix):])
            if found is not None:
                out.append(found)
        return out

    def _raw(self, prefix: bytes, object_id: bytes) -> bytes | None:
        return self._db.get(prefix + object_id)

    def _decode(self, decode: Callable[[bytes], T], raw: bytes, object_id: bytes, what: str) -> T:
        try:
            obj = decode(raw)
        except (DeserializationError, PouwError, ValueError) as exc:
            raise self._corrupt(what, object_id, str(exc)) from exc
        if getattr(obj, "id", None) != object_id:
            raise self._corrupt(what, object_id, "the record hashes to another id")
        return obj

    def _corrupt(self, what: str, object_id: bytes, detail: str) -> DatabaseError:
        return DatabaseError(f"Error reading {what} {hash_to_hex(object_id)} from the {self.name} "
                             f"{self.path}: {detail}. {self._db.advice}")
