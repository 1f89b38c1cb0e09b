"""Drives the Python `websockets` client against a WebSocket URL for wshub's interop tests.

Reads one JSON request on stdin: {"url": ..., "scenario": ..., ...scenario fields}.
Writes one JSON object on stdout with what the client observed; the calling test
decides whether that is right. Binary data travels as base64. Exit code 0 on
success, 1 with {"error": ...} when the client raised.
"""

import asyncio
import base64
import json
import sys

import websockets

MAX_SIZE = 16 * 1024 * 1024
TIMEOUT = 8.0


def describe(message):
    """A JSON-friendly view of a received message that keeps its opcode."""
    if isinstance(message, str):
        return {"type": "text", "text": message}
    return {"type": "binary", "base64": base64.b64encode(message).decode("ascii")}


async def recv(ws):
    return describe(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def echo_each(ws, request):
    """Sends each message and waits for its echo before the next one."""
    received = []
    for text in request.get("texts", []):
        await ws.send(text)
        received.append(await recv(ws))
    for encoded in request.get("binaries", []):
        await ws.send(base64.b64decode(encoded))
        received.append(await recv(ws))
    return {"received": received}


async def ordered(ws, request):
    """Sends every message back to back, then reads as many replies."""
    texts = request["texts"]
    for text in texts:
        await ws.send(text)
    return {"received": [await recv(ws) for _ in texts]}


def close_info(ws):
    # websockets >= 10 exposes the received close frame as close_rcvd;
    # close_code/close_reason exist in every version (deprecated in newer ones).
    rcvd = getattr(ws, "close_rcvd", None)
    if rcvd is not None:
        return rcvd.code, rcvd.reason
    return ws.close_code, ws.close_reason


async def close(ws, request):
    await asyncio.wait_for(ws.close(request["code"], request["reason"]), TIMEOUT)
    code, reason = close_info(ws)
    return {"code": code, "reason": reason}


async def ping(ws, request):
    payload = base64.b64decode(request["base64"])
    # The waiter resolves only on a pong that carries this exact payload.
    waiter = await ws.ping(payload)
    try:
        await asyncio.wait_for(waiter, TIMEOUT)
        pong = True
    except asyncio.TimeoutError:
        pong = False
    await ws.send("after ping")
    return {"pong": pong, "after": await recv(ws)}


async def subprotocol(ws, _request):
    return {"subprotocol": ws.subprotocol}


SCENARIOS = {
    "echo": echo_each,
    "ordered": ordered,
    "close": close,
    "ping": ping,
    "subprotocol": subprotocol,
}


async def run(request):
    scenario = SCENARIOS[request["scenario"]]
    protocols = request.get("protocols")
    async with websockets.connect(
        request["url"],
        subprotocols=protocols,
        max_size=MAX_SIZE,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        return await scenario(ws, request)


def main():
    request = json.load(sys.stdin)
    try:
        result = asyncio.run(run(request))
    except Exception as error:  # reported to the test, which prints it
        json.dump({"error": f"{type(error).__name__}: {error}"}, sys.stdout)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
