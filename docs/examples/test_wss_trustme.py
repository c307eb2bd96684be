"""Testing a wss:// server with trustme certificates (docs/howto-tls-tests.md).

Run it with ``python -m pytest test_wss_trustme.py`` (needs pytest, trustme,
anyio's pytest plugin, which comes with anyio, and trio for the trio run).
"""

import ssl

import anyio
import pytest
import trustme

from faye_websocket import WebSocket
from faye_websocket.exceptions import ConnectError
from faye_websocket.http import Server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.fixture(scope="session")
def ca():
    """A certificate authority that exists only for this test run."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


async def echo(request, stream, body):
    async with WebSocket(request, stream, body) as ws:
        async for message in ws:
            await ws.send(message)


@pytest.fixture
async def wss_port(server_context):
    """An echo server over TLS on a free port, for one test."""
    server = Server(on_upgrade=echo)
    async with anyio.create_task_group() as tg:
        yield await tg.start(server.serve, "127.0.0.1", 0, server_context)
        await server.shutdown()


async def test_echo_over_wss(wss_port, client_context):
    with anyio.fail_after(10):
        url = f"wss://localhost:{wss_port}/"
        async with WebSocket.Client(url, tls=client_context) as ws:
            assert ws.url == url
            await ws.send("secret")
            assert await ws.receive() == "secret"


async def test_the_system_store_does_not_trust_the_test_ca(wss_port):
    with anyio.fail_after(10), pytest.raises(ConnectError):
        async with WebSocket.Client(f"wss://localhost:{wss_port}/"):
            pass
