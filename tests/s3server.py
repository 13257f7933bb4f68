"""A real S3-compatible server for the tests: moto's standalone server as a subprocess.

It listens on 127.0.0.1 with a free port (as s3fs's own test suite does); tests never
use an in-process mock. :class:`MotoServer` can be stopped mid-test (a network failure)
and started again on the same port (moto keeps its objects in memory: a restart starts
empty). Shared by tests/storage/ and tests/s3/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

BUCKET = "lakefs-test"
CREDENTIALS = {"key": "testing", "secret": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1:``port``; ``env`` adds to its environment."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def moto_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """A moto S3 server subprocess; yields its endpoint URL."""
    server = MotoServer(env=env)
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    """s3fs storage options for a test endpoint: dummy credentials, fail fast."""
    return {
        **CREDENTIALS,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {
            "connect_timeout": 1,
            "read_timeout": 5,
            "retries": {"max_attempts": 1, "mode": "standard"},
        },
    }


def boto_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@contextmanager
def _serving(handle: Callable[..., Any], what: str) -> Iterator[str]:
    """Serve ``handle`` (an asyncio connection handler) on 127.0.0.1 from an asyncio loop
    in a daemon thread; yields its URL. On exit the server stops and the connections'
    tasks still running are cancelled."""
    import asyncio  # noqa: PLC0415
    import threading  # noqa: PLC0415

    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        started.set()
        async with server:
            await state["stop"].wait()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError(f"the {what} did not start")
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)


@contextmanager
def throttled_proxy(endpoint: str, rate: int) -> Iterator[str]:
    """A TCP proxy on 127.0.0.1 to ``endpoint`` that passes at most ``rate`` bytes per
    second each way per connection (a slow link whose data keeps flowing); yields its
    endpoint URL."""
    import asyncio  # noqa: PLC0415

    host, port = endpoint.rsplit("//", 1)[1].rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(16 << 10):
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(len(data) / rate)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    with _serving(handle, "throttling proxy") as url:
        yield url


@contextmanager
def resetting_server() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts each connection and resets it at once (a
    store restarting, a load balancer dropping connections); yields its URL."""

    async def handle(reader: Any, writer: Any) -> None:
        writer.transport.abort()

    with _serving(handle, "resetting server") as url:
        yield url
