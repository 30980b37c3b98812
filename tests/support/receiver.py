"""A partner's §7.3 callback endpoint (or the operator's notification webhook, §8.3.1) on 127.0.0.1 for the
tests: a real aiohttp server that keeps every JSON body it is posted."""

from __future__ import annotations

from aiohttp import web

#: the fields of every callback body (DESIGN §6, §7.3)
CALLBACK_FIELDS = frozenset({"eid", "task_id", "card_status", "write_result", "write_time", "iccid", "msisdn",
                             "status_desc", "event_id", "timestamp", "sign"})
#: the receiver is plain http on 127.0.0.1: a development platform's settings (docs/operations.md)
LOOPBACK_RECEIVER = {"ESIMOTA_ALLOW_HTTP_CALLBACKS": "1", "ESIMOTA_CALLBACK_ALLOW": "127.0.0.0/8"}


class Receiver:
    """Keeps every body; answers `failures` bad responses (a 500, then a 200 whose JSON code is not 200,
    alternately: both are retried), then JSON code 200."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.bodies, self.headers = failures, [], []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        n = len(self.bodies)
        if n <= self.failures:
            return web.json_response({"code": 500, "message": "busy"}, status=500 if n % 2 else 200)
        return web.json_response({"code": 200, "message": "接收成功"})

    async def start(self, path: str = "/cb") -> str:
        """Listens on a free loopback port; returns the URL to post to."""
        app = web.Application()
        app.router.add_post(path, self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def of(self, task_id: str) -> list[dict]:
        """The bodies received for one task."""
        return [b for b in self.bodies if b["task_id"] == task_id]
