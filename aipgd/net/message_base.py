"""The base of every P2P message class and the context parsing needs.

Owns `Message` (a command name, `serialize()` and `read()`) and `DecodeContext`. It must never
know any particular command: those live in aipgd.net.messages and aipgd.net.blockmessages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from aipgd.core.serialize import ByteReader

_NONE: Mapping[str, type[Message]] = MappingProxyType({})
_NO_LIMITS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What parsing needs from the network: the nTime from which headers are 120-byte KawPoW ones,
    and the commands beyond Core's that this node speaks (PoUW), with their payload caps. Commands
    not known here stay unknown messages, which Core ignores."""

    kawpow_activation_time: int
    extensions: Mapping[str, type[Message]] = field(default_factory=lambda: _NONE, compare=False, hash=False)
    payload_limits: Mapping[str, int] = field(default_factory=lambda: _NO_LIMITS, compare=False, hash=False)


class Message(ABC):
    """Every command implements both directions of its payload encoding."""

    command: ClassVar[str]

    @abstractmethod
    def serialize(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Message: ...


class EmptyMessage(Message):
    """A message with no payload (verack, getaddr, mempool, sendheaders, filterclear)."""

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Message:
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(self.command)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
