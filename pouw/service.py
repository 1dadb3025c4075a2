"""PouwService: the node's Proof-of-Useful-Work component (started with -pouw, -pouwapi or -pouwvalidator).

Owns the PoUW configuration and, for now, the paid tier's key store, the rate limiter and the
admission policy; the job queue, workers, validator and API server join it as they are built. It
starts and stops like every Node component. It must never reach into chain state or the RPC layer:
RPC handlers reach it through the RPC context.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aipgd.errors import InitError
from pouw.apikeys import ApiKey, ApiKeyStore
from pouw.config import PouwConfig
from pouw.gossip import PouwGossip
from pouw.ratelimit import RateLimiter, RateLimits
from pouw.router import WorkerDirectory
from pouw.runtime import PouwRuntime
from pouw.tiers import AdmissionPolicy, TierPolicy

logger = logging.getLogger(__name__)

POUW_DIRNAME = "pouw"
APIKEYS_DIRNAME = "apikeys"


def tier_policy(config: PouwConfig) -> TierPolicy:
    free = (RateLimits(config.free_rpm, config.free_tpm)
            if config.free_rpm > 0 and config.free_tpm > 0 else None)
    return TierPolicy(free_limits=free, paid_limits=RateLimits(config.paid_rpm, config.paid_tpm),
                      price_per_1k_tokens=config.price_per_1k_tokens, trusted_proxies=config.trusted_proxies)


class PouwService:
    """The PoUW component of one node."""

    name = "PoUW service"

    def __init__(self, config: PouwConfig, netdir: Path, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 tip_hash: Callable[[], bytes] | None = None) -> None:
        self.config = config
        self.datadir = netdir / POUW_DIRNAME
        self.api_keys = ApiKeyStore(self.datadir / APIKEYS_DIRNAME, clock=wall_clock)
        self.limiter = RateLimiter(clock=clock)
        self.admission = AdmissionPolicy(tier_policy(config), self.api_keys, self.limiter)
        self.running = False
        self._loop = loop
        self._tip_hash = tip_hash
        self._wall_clock = wall_clock
        # The workers this node can route to, local and remote; the P2P layer's PoUW handler fills in
        # the remote ones (it exists from construction: the connection manager is built with it).
        self.directory = WorkerDirectory()
        self.gossip: PouwGossip | None = None
        if loop is not None:
            self.gossip = PouwGossip(directory=self.directory, clock=wall_clock)
        # The event-loop half (workers, queue, API, validator); None without a loop (tools, tests).
        self.runtime: PouwRuntime | None = None

    def _on_loop(self, coro: Any, timeout: float | None = None) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        for model in self.config.models:
            if not model.path.is_file():
                raise InitError(f"-pouwmodel={model.name}: model file {model.path} does not exist")
        self.api_keys.open()
        if self._loop is not None:
            runtime = PouwRuntime(self.config, self.datadir, self.admission, self._loop,
                                  directory=self.directory, gossip=self.gossip, tip_hash=self._tip_hash,
                                  clock=self._wall_clock)
            try:
                self._on_loop(runtime.start())
            except BaseException:
                self.api_keys.close()
                raise
            self.runtime = runtime
        self.running = True
        roles = [r for r, on in (("worker", self.config.worker), ("api", self.config.api),
                                 ("validator", self.config.validator)) if on]
        logger.info("PoUW service started (%s); %d API keys", ", ".join(roles),
                    len(self.api_keys.list_keys()))

    def stop(self) -> None:
        self.running = False
        if self.runtime is not None:
            try:
                self._on_loop(self.runtime.stop(), timeout=60)
            finally:
                self.runtime = None
        self.api_keys.close()

    # -- operator actions (the API-key RPCs) ---------------------------------------------------

    def create_api_key(self, label: str, credit: int = 0, trusted_only: bool = True,
                       requests_per_minute: int | None = None,
                       tokens_per_minute: int | None = None) -> tuple[str, ApiKey]:
        secret, key = self.api_keys.create(label, credit, trusted_only, requests_per_minute,
                                           tokens_per_minute)
        # The id only: the secret is never logged.
        logger.info("Created PoUW API key %s (%s)", key.key_id, label)
        return secret, key

    def revoke_api_key(self, key_id: str) -> ApiKey:
        key = self.api_keys.revoke(key_id)
        logger.info("Revoked PoUW API key %s", key.key_id)
        return key

    def credit_api_key(self, key_id: str, amount: int) -> ApiKey:
        return self.api_keys.credit(key_id, amount)
