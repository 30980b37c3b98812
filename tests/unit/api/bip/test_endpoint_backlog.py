"""The BIP listener's accept queue holds a fleet's power-on surge (DESIGN §5.5; found by benchmarks/fleet.py)."""

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from esimota.api.bip import endpoint


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the listen backlog")
async def test_the_listen_backlog_is_ours_not_asyncios_default():
    """asyncio's create_server(sock=...) listens again with its own backlog (100 by default): the
    socket must keep the endpoint's, as far as the kernel allows (net.core.somaxconn)."""
    server = await endpoint.start("127.0.0.1", 0, asyncio.Protocol)
    try:
        port = server.sockets[0].getsockname()[1]
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
        backlog = int(out.split()[2])  # State Recv-Q Send-Q …: Send-Q of a listener is its backlog
        cap = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert backlog == min(endpoint.BACKLOG, cap) and backlog > 100
    finally:
        server.close()
        await server.wait_closed()
