"""What every call goes through, on both transports: token, whitelist, permission, limit, handler, call log."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from .. import config
from ..log import REQUEST_ID
from ..errors import PermissionDenied, Unauthenticated
from ..service import auth, staff_auth
from . import status
from ..store.call_log import CallLog
from .addresses import CallerAddress
from .handlers import HANDLERS, Call
from .limits import Quota, RateLimiter, SharedWindows, StreamPlaces
from .registry import Method

logger = logging.getLogger("esimota.api")
TOKEN_CALLS_PER_IP = 120  # GetToken a minute from one address (guessing secrets is slow)


class Failed(Exception):
    """A call that ended with an error: its mapped outcome and the caller's quota, if known."""

    def __init__(self, outcome: status.Outcome, quota: Quota | None) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.quota = quota


@dataclass
class Authorised:
    call: Call
    quota: Quota | None
    client_id: str | None


class Api:
    """One per worker, shared by the HTTP bridge and the gRPC servicers (they cannot behave differently)."""

    def __init__(self, pool: Any, settings: config.Settings | None = None,
                 signer: auth.TokenSigner | None = None, worker_id: int = 0) -> None:
        self.pool = pool
        self.settings = settings or config.Settings()
        self.signer = signer or auth.signer_from_config()
        self.clients = auth.ClientCache(pool)
        self.staff = staff_auth.StaffGate(pool)
        self.addresses = CallerAddress(self.settings.trusted_proxy_header, self.settings.trusted_proxies)
        self.limiter = RateLimiter()
        # a client's server streams counted over every worker and node (store.stream_places)
        self.watches = StreamPlaces(pool, self.settings.watch_streams_per_client, self.settings.node_id, worker_id,
                                    self.settings.watch_place_ttl_s)
        self.shared_limits = SharedWindows(pool, self.limiter)  # one client's calls counted over all workers
        self.call_log = CallLog(pool)

    async def start(self) -> None:
        for cache in (self.clients, self.staff):
            try:
                await cache.reload()
            except Exception as exc:  # the database may still be starting: the refresher retries
                logger.warning("cache not loaded yet", extra={"cache": type(cache).__name__,
                                                              "error": type(exc).__name__})
            cache.start()
        self.shared_limits.start()
        self.watches.start()
        self.call_log.start()

    async def stop(self) -> None:
        await self.clients.stop()
        await self.staff.stop()
        await self.shared_limits.stop()
        await self.watches.stop()
        await self.call_log.stop()

    async def authorise(self, method: Method, token: str | None, source_ip: str) -> Authorised:
        """§7.1.2: a valid token (a staff or the admin token), the whitelist, the permission, then the limit."""
        if method.permission == "public":
            quota = self.limiter.hit(("ip", source_ip), TOKEN_CALLS_PER_IP)
            return Authorised(Call(self.pool, self.signer, None, source_ip, "public"), quota, None)
        if method.permission == "staff":  # AdminService, IngestService: the staff member's roles, per call (R28)
            actor = await self.staff.authorise(token, method.staff_action, method.name)
            return Authorised(Call(self.pool, self.signer, None, source_ip, actor), None, actor)
        if not token:
            raise Unauthenticated("token is required (query token= or Authorization: Bearer)",
                                  reason="TOKEN_REQUIRED")
        entry = await self.clients.resolve(*self.signer.verify(token))
        client = entry.client
        auth.check_ip(entry, source_ip)
        if method.permission not in client.permissions:
            raise PermissionDenied(f"the client has no {method.permission} permission", reason="NO_PERMISSION")
        quota = self.limiter.hit(client.id, client.rate_limit_per_min)
        charge = functools.partial(self.limiter.hit, client.id, client.rate_limit_per_min)
        return Authorised(Call(self.pool, self.signer, client, source_ip, f"client:{client.client_id}", charge),
                          quota, client.client_id)

    def log_call(self, method: Method, transport: str, params: dict, who: str | None, code: int,
             reason: str | None, t0: float, source_ip: str) -> None:
        self.call_log.record(client_id=who, transport=transport, route=method.path, params=params, code=code,
                             reason=reason, latency_s=time.perf_counter() - t0, source_ip=source_ip,
                             request_id=REQUEST_ID.get())

    async def unary(self, method: Method, request: Any, *, token: str | None, source_ip: str,
                    transport: str, params: dict) -> tuple[Any, Quota | None]:
        """Run one unary call; raises Failed (already mapped) on any error. Every call is logged (R27)."""
        t0, who, quota, code, reason = time.perf_counter(), None, None, 200, None
        try:
            granted = await self.authorise(method, token, source_ip)
            who, quota = granted.client_id, granted.quota
            return await HANDLERS[method.name](granted.call, request), quota
        except Exception as exc:
            o = status.outcome(exc)
            code, reason = o.http, o.reason
            raise Failed(o, quota or getattr(exc, "quota", None)) from None
        finally:
            self.log_call(method, transport, params, who, code, reason, t0, source_ip)

    async def stream(self, method: Method, request: Any, *, token: str | None, source_ip: str,
                     params: dict) -> AsyncIterator[Any]:
        """A streaming call (gRPC only): authorised once, logged once when it ends.

        A partner's server stream (WatchWriteStatus) holds a place of its client's cap, counted over every
        worker and node, while it runs (over the cap: RESOURCE_EXHAUSTED; the database down: UNAVAILABLE),
        and gives it back when it ends: at the latest when its lifetime is over (`Call.until`)."""
        t0, who, code, reason, held = time.perf_counter(), None, 200, None, None
        try:
            granted = await self.authorise(method, token, source_ip)
            who = granted.client_id
            if method.server_streaming and granted.call.client is not None:
                granted.call.until = time.monotonic() + self.settings.watch_lifetime_s
                held = await self.watches.enter(granted.call.client.id, granted.call)
            result = HANDLERS[method.name](granted.call, request)
            if method.server_streaming:
                async for item in result:
                    yield item
            else:
                yield await result
        except Exception as exc:
            o = status.outcome(exc)
            code, reason = o.http, o.reason
            raise Failed(o, getattr(exc, "quota", None)) from None
        finally:
            if held is not None:
                self.watches.leave(held)
            self.log_call(method, "grpc", params, who, code, reason, t0, source_ip)
