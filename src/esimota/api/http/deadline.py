"""A deadline for a request head: a connection that has not sent one whole request head in time is cut.

aiohttp reads request heads without a deadline, so a slow-loris client (a byte now and then) would
hold a connection for ever; idle keep-alive connections are already closed by keepalive_timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import http_exceptions, web, web_protocol

from .app import HSTS, SERVER

log = logging.getLogger("esimota.api.http")


class _Guarded(asyncio.Protocol):
    """Forwards to aiohttp's RequestHandler; cuts the transport when a request head is not whole in time.

    The clock starts when the connection opens, and again when the first bytes of a later request
    arrive on a kept-alive connection (an idle kept-alive connection is aiohttp's keepalive_timeout's).
    """

    def __init__(self, inner, timeout: float) -> None:
        self.inner = inner
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        self.transport = None
        self.heads = 0  # the count of parsed heads the running clock waits to see exceeded

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        self._arm(0)

    def _arm(self, heads: int) -> None:
        self.heads = heads
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._check)

    def _check(self) -> None:
        self.timer = None
        # _request_count counts the request heads aiohttp has parsed on this connection
        if getattr(self.inner, "_request_count", self.heads + 1) == self.heads \
                and self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        before = getattr(inner, "_request_count", 0)
        inner.data_received(data)
        # bytes that began a new head on an idle kept-alive connection without completing it
        if self.timer is None and getattr(inner, "_request_count", before + 1) == before \
                and getattr(inner, "_current_request", True) is None and not getattr(inner, "_messages", True):
            self._arm(before)

    def eof_received(self):
        return self.inner.eof_received()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class QuietHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, but a request it cannot parse (a request line or header over 8 KiB, a
    bad method, broken framing) gets a short JSON 400 that echoes nothing of the request — the line may
    hold the caller's token — and one log line without a traceback; a 500 keeps aiohttp's logging."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:  # a fault of ours: aiohttp logs it with its traceback
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            body = {"code": status, "message": "internal error", "error": "INTERNAL"}
        else:
            log.info("unparseable request refused", extra={"status": status, "error": type(exc).__name__,
                                                           "peer": request.remote})
            too_long = isinstance(exc, http_exceptions.LineTooLong)
            body = {"code": status, "message": "the request line or a header is too long" if too_long
                    else "the request could not be parsed", "error": "REQUEST_TOO_LARGE" if too_long
                    else "BAD_REQUEST"}
        if request.writer.output_size > 0:  # a response is on its way already: only closing is left
            raise ConnectionError("response already sent, cannot send the error")
        resp = web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                            headers={"Server": SERVER})
        if request.transport is not None and request.transport.get_extra_info("sslcontext") is not None:
            resp.headers["Strict-Transport-Security"] = HSTS
        resp.force_close()
        return resp


class GuardedTCPSite(web.TCPSite):
    """TCPSite whose connections must send a request head within `head_timeout` seconds."""

    def __init__(self, *args, head_timeout: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        timeout = self.head_timeout

        def factory() -> QuietHandler:  # what web.Server() makes, with QuietHandler's error answers
            return QuietHandler(server, loop=server._loop, **server._kwargs)

        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guarded(factory(), timeout), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
