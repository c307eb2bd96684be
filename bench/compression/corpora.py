"""Seeded message corpora for the compression benchmark.

Each corpus is a list of messages as one connection would send them in
order, so that compressing them with context takeover is realistic.
"""

from __future__ import annotations

import json
import random

_WORDS = (
    "the a to and of in is it you that for on was with he as at by this have from or "
    "one had not but what all were when we there can an your which their said if do "
    "will each about how up out them then she many some so these would other into has "
    "more her two like him see time could no make than first been its who now people my "
    "made over did down only way find use may water long little very after words called "
    "just where most know deploy build release merge branch review ticket standup lunch "
    "coffee meeting tomorrow today thanks great sounds good ok sure lol nice done ship"
).split()
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
          "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent")
_ROOMS = ("general", "random", "dev", "ops", "design", "sales", "support")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _chat_message(rng: random.Random, i: int) -> dict[str, object]:
    user = rng.choice(_NAMES)
    msg: dict[str, object] = {
        "type": "message", "id": 100000 + i, "room": rng.choice(_ROOMS),
        "user": {"id": _NAMES.index(user) + 1000, "name": user},
        "text": _text(rng, max(1, int(rng.lognormvariate(2.0, 0.9)))),
        "ts": 1_700_000_000_000 + i * rng.randint(200, 5000),
    }
    if rng.random() < 0.1:
        msg["reactions"] = [{"emoji": rng.choice(("+1", "heart", "tada")),
                             "count": rng.randint(1, 9)}]
    return msg


def chat(n: int = 200, seed: int = 1) -> list[bytes]:
    """Chat traffic: mostly single messages (60 B - 1 KiB), now and then a
    typing notice (tiny) or a history page of 5-50 messages (up to ~10 KiB)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        r = rng.random()
        if r < 0.15:
            doc: object = {"type": "typing", "user": rng.choice(_NAMES)}
        elif r < 0.95:
            doc = _chat_message(rng, i)
        else:
            doc = {"type": "history", "messages": [_chat_message(rng, i * 100 + k)
                                                  for k in range(rng.randint(5, 50))]}
        out.append(json.dumps(doc, separators=(",", ":")).encode())
    return out


def dashboard(n: int = 100, seed: int = 2) -> list[bytes]:
    """Dashboard updates: metric series of 1-10 KiB with numbers that drift."""
    rng = random.Random(seed)
    hosts = [f"web-{k:02d}" for k in range(40)]
    out = []
    for i in range(n):
        series = []
        for host in rng.sample(hosts, rng.randint(2, 25)):
            base = rng.uniform(0, 100)
            series.append({"metric": rng.choice(("cpu.user", "mem.used", "net.rx", "req.p99")),
                           "host": host, "unit": "percent",
                           "points": [round(base + rng.gauss(0, 3), 2) for _ in range(8)]})
        doc = {"type": "update", "seq": i, "ts": 1_700_000_000 + i * 5, "series": series}
        out.append(json.dumps(doc, separators=(",", ":")).encode())
    return out


def logs(n: int = 8, seed: int = 3) -> list[bytes]:
    """64 KiB chunks of an access log."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lines: list[str] = []
        size = 0
        while size < 65536:
            line = (f"10.0.{rng.randint(0, 255)}.{rng.randint(0, 255)} - - "
                    f"[14/Nov/2023:10:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0000] "
                    f"\"{rng.choice(('GET', 'GET', 'POST'))} /api/v1/{rng.choice(_WORDS)}/"
                    f"{rng.randint(1, 99999)} HTTP/1.1\" {rng.choice((200, 200, 200, 304, 404))} "
                    f"{rng.randint(100, 90000)} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n")
            lines.append(line)
            size += len(line)
        out.append("".join(lines).encode()[:65536])
    return out


def random_bytes(n: int = 40, seed: int = 4) -> list[bytes]:
    """Incompressible payloads, 1 B - 64 KiB, log-uniform."""
    rng = random.Random(seed)
    return [rng.randbytes(int(2 ** rng.uniform(0, 16))) for _ in range(n)]


CORPORA = {"chat": chat, "dashboard": dashboard, "log": logs, "random": random_bytes}
