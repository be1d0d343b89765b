"""Bus hygiene: a reply stream nobody reads expires, every stream redkube writes is capped, and
no blocking read asks for a BLOCK its connection's socket timeout would cut short.

A component that dies (kill -9) never deletes its reply stream ``rk:api:reply:CLIENT``;
the API server sets a TTL on it with every answer (``--reply-ttl-seconds``, 600 by
default), so it goes away by itself.
"""

from __future__ import annotations

import ast
import time
import uuid
from pathlib import Path

from shared import bus, redis_conn
from tests.harness import ROOT, Cluster, wait_for

SHORT_TTL_S = 2


def _send(cluster: Cluster, reply: str) -> None:
    """An API request whose answer goes to ``reply``, which nobody reads."""
    cluster.redis.xadd(cluster.keys.requests, {"id": uuid.uuid4().hex, "verb": "get", "resource": "namespaces",
                                               "name": "default", "token": cluster.token(), "reply": reply})


def test_reply_stream_gets_a_bounded_ttl(api: Cluster) -> None:
    reply = api.keys.reply(f"gone-{uuid.uuid4().hex[:8]}")
    _send(api, reply)
    wait_for(lambda: api.redis.exists(reply), timeout=10, message="the reply written")
    ttl = api.redis.ttl(reply)
    assert 0 < ttl <= bus.REPLY_TTL_S, ttl  # -1 would be a stream kept for ever
    api.redis.expire(reply, 5)
    _send(api, reply)  # every answer renews the TTL: a live client's stream does not vanish under it
    wait_for(lambda: api.redis.xlen(reply) == 2, timeout=10, message="the second reply")
    assert api.redis.ttl(reply) > 5


def test_reply_stream_nobody_reads_expires(cluster: Cluster) -> None:
    cluster.start_apiserver("--reply-ttl-seconds", str(SHORT_TTL_S))
    reply = cluster.keys.reply(f"dead-client-{uuid.uuid4().hex[:8]}")
    _send(cluster, reply)
    wait_for(lambda: cluster.redis.exists(reply), timeout=10, message="the reply written")
    written = time.monotonic()
    assert 0 < cluster.redis.ttl(reply) <= SHORT_TTL_S
    wait_for(lambda: not cluster.redis.exists(reply), timeout=SHORT_TTL_S + 10, interval=0.1,
             message="the unread reply stream expiring")
    print(f"\n[bus] unread reply stream gone {time.monotonic() - written:.1f}s after the reply (TTL {SHORT_TTL_S}s)")


# --- every stream is capped ------------------------------------------------------------------


def _uncapped_xadds() -> list[str]:
    """``xadd`` calls in the product code with neither ``maxlen`` nor ``minid``; Lua XADDs with no trim."""
    found = []
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "xadd"
                    and not {k.arg for k in node.keywords} & {"maxlen", "minid"}):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    for path in sorted([*(ROOT / "services").rglob("*.lua"), *(ROOT / "shared").rglob("*.lua")]):
        text = path.read_text()
        if "XADD" in text and not any(word in text for word in ("XTRIM", "MAXLEN", "MINID")):
            found.append(str(path.relative_to(ROOT)))
    return found


def test_every_stream_redkube_writes_is_capped() -> None:
    assert _uncapped_xadds() == []
    assert any(True for _ in Path(ROOT / "shared" / "lua").glob("*.lua"))  # the store's XADD was looked at


def _long_blocks() -> list[str]:
    """``block=``/``block_ms=`` literals (calls and defaults) above ``redis_conn.MAX_BLOCK_MS``."""
    found = []
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            pairs: list[tuple[str | None, ast.expr]] = []
            if isinstance(node, ast.Call):
                pairs = [(k.arg, k.value) for k in node.keywords]
            elif isinstance(node, ast.arguments):
                named = [*node.posonlyargs, *node.args]
                pairs = list(zip([a.arg for a in named[len(named) - len(node.defaults):]], node.defaults, strict=True))
                pairs += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d is not None]
            for name, value in pairs:
                if (name in ("block", "block_ms") and isinstance(value, ast.Constant)
                        and isinstance(value.value, int) and value.value > redis_conn.MAX_BLOCK_MS):
                    found.append(f"{path.relative_to(ROOT)}:{value.lineno} {name}={value.value}")
    return found


def test_no_blocking_read_outlasts_its_socket_timeout() -> None:
    """A blocking connection gives up after ``BLOCKING_SOCKET_TIMEOUT_S`` of silence (a partition);
    a BLOCK that long would be cut short every time."""
    assert redis_conn.MAX_BLOCK_MS / 1000 < redis_conn.BLOCKING_SOCKET_TIMEOUT_S
    assert _long_blocks() == []
