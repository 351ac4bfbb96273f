"""A real HTTP forward proxy for the proxy tests: one asyncio server per endpoint on 127.0.0.1, Basic auth,
an access log naming the endpoint that carried each request.

Chromium sends loopback hosts direct, bypassing any proxy, so pages are addressed through made-up
``*.quarry.test`` host names that only this proxy resolves (to 127.0.0.1, keeping the URL's port).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import attrs

FAKE_DOMAIN = ".quarry.test"


@attrs.frozen
class Access:
    endpoint: str
    method: str
    url: str
    user: str | None
    status: int


@attrs.define
class ForwardProxies:
    """Endpoints ``name -> port`` on 127.0.0.1; ``log`` lists every request, 407s included."""

    ports: dict[str, int] = attrs.field(factory=dict)
    log: list[Access] = attrs.field(factory=list)
    username: str = "quarry"
    password: str = ""

    def endpoint(self, name: str) -> dict[str, object]:
        return {
            "protocol": "http",
            "host": "127.0.0.1",
            "port": self.ports[name],
            "username": self.username,
            "password": self.password,
        }

    def served(self, path_contains: str = "") -> list[Access]:
        """Requests answered with a page (status 200) whose URL contains ``path_contains``."""
        return [a for a in self.log if a.status == 200 and path_contains in a.url]

    def name_of_port(self, port: int) -> str:
        return next(n for n, p in self.ports.items() if p == port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def _handler(name: str, proxies: ForwardProxies):  # type: ignore[no-untyped-def]
    expected = "Basic " + base64.b64encode(f"{proxies.username}:{proxies.password}".encode()).decode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers.append((key.strip(), value.strip()))
        auth = next((v for k, v in headers if k.lower() == "proxy-authorization"), None)
        user = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)[0] if auth else None

        def answer(status: int, reason: str, extra: str = "") -> None:
            proxies.log.append(Access(name, method, target, user, status))
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )

        if auth != expected:
            answer(407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="quarry-test"\r\n')
            await writer.drain()
            writer.close()
            return
        parts = urlsplit(target)
        host = parts.hostname or ""
        if method == "CONNECT" or parts.scheme != "http" or not host.endswith(FAKE_DOMAIN):
            answer(502, "Bad Gateway")
            await writer.drain()
            writer.close()
            return
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0") or 0)
        body = await reader.readexactly(length) if length else b""
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", parts.port or 80)
        except OSError:
            answer(502, "Bad Gateway")
            await writer.drain()
            writer.close()
            return
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        forwarded = [f"{method} {path} HTTP/1.1"]
        for key, value in headers:
            if key.lower().startswith("proxy-") or key.lower() in ("connection", "keep-alive"):
                continue
            forwarded.append(f"{key}: {value}")
        forwarded.append("Connection: close")
        up_writer.write(("\r\n".join(forwarded) + "\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()
        status_line = await up_reader.readline()
        status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        proxies.log.append(Access(name, method, target, user, status))
        writer.write(status_line)
        await asyncio.gather(_pipe(up_reader, writer), return_exceptions=True)
        up_writer.close()

    return handle


@contextmanager
def forward_proxies(names: list[str], password: str, username: str = "quarry") -> Iterator[ForwardProxies]:
    """Start one authenticated forward proxy per name on 127.0.0.1 in a background thread."""
    proxies = ForwardProxies(username=username, password=password)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        for name in names:
            server = await asyncio.start_server(_handler(name, proxies), "127.0.0.1", 0)
            servers.append(server)
            proxies.ports[name] = server.sockets[0].getsockname()[1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield proxies
    finally:

        async def stop() -> None:
            for server in servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
