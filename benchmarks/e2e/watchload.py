#!/usr/bin/env python3
"""Watch clients for the end-to-end benchmarks, one process, asyncio.

Subcommands (each prints one JSON object per line on stdout):

  hold    open N HTTP/1.1 watches, report when every one has its 200 headers,
          keep them open until stdin closes (the harness samples RSS meanwhile)
  relay   one watch directly to the API server and one through each proxy;
          a writer patches a Service; per event, the arrival time through each
          proxy minus the arrival time of the same resourceVersion directly
  fanout  N watches directly to the API server, then writers patch a Service
          as fast as they can for D seconds; events delivered per second

Watches are kube-style: GET ...?watch=1, chunked newline-delimited JSON.
Only the standard library is used (uvloop when it happens to be installed).
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import time
import urllib.parse

EVENT_NEEDLE = b'{"type":"'


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    tls = u.scheme == "https"
    return u.hostname, u.port or (443 if tls else 80), tls


def ssl_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def request_bytes(method, path, host, token, body=None, content_type=None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json",
             "User-Agent: isthmus-bench/1.0"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Watch(asyncio.Protocol):
    """One HTTP/1.1 watch. In counting mode it only counts event starts in the
    raw bytes (cheap enough for fan-out); in tracking mode it de-chunks, parses
    each event and records when each resourceVersion arrived."""

    def __init__(self, request, track=False):
        self.request = request
        self.track = track
        self.headers = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.head = b""
        self.carry = b""
        self.events = 0
        self.bytes = 0
        self.status = None
        self.arrivals = {}  # resourceVersion -> perf_counter seconds (tracking mode)
        self.last_arrival = 0.0
        self.chunk_left, self.skip, self.size_line = 0, 0, b""  # counting mode's chunked decoder
        self.raw = b""  # tracking mode: undecoded chunked body
        self.lines = b""

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.perf_counter()
        if not self.headers.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = self.head.split(b"\r\n", 1)[0].decode("latin-1")
            self.status = int(status_line.split()[1])
            data = self.head[end + 4:]
            self.headers.set_result(self.status)
        if not data or self.status != 200:  # an error Status body is not a watch stream
            return
        self.bytes += len(data)
        self.last_arrival = now
        if self.track:
            self._track(data, now)
        else:
            self._count(data)

    def _count(self, data):
        """De-chunks without copying whole chunks, and counts event starts in the payload.
        (A proxy may split an event over two chunks, so counting in the raw bytes would miss some.)"""
        i, n = 0, len(data)
        while i < n:
            if self.chunk_left > 0:  # inside a chunk's payload
                take = min(self.chunk_left, n - i)
                payload = self.carry + data[i:i + take]
                self.events += payload.count(EVENT_NEEDLE)
                self.carry = payload[-(len(EVENT_NEEDLE) - 1):]
                self.chunk_left -= take
                i += take
                if self.chunk_left == 0:
                    self.skip = 2  # the CRLF after the payload
                continue
            if self.skip > 0:
                take = min(self.skip, n - i)
                self.skip -= take
                i += take
                continue
            eol = data.find(b"\n", i)  # the chunk-size line, possibly split across reads
            if eol < 0:
                self.size_line += data[i:]
                return
            line, self.size_line = self.size_line + data[i:eol], b""
            i = eol + 1
            self.chunk_left = int(line.strip().split(b";")[0] or b"0", 16)

    def _track(self, data, now):
        self.raw += data
        while True:  # chunked transfer coding: SIZE\r\nDATA\r\n
            eol = self.raw.find(b"\r\n")
            if eol < 0:
                break
            size = int(self.raw[:eol].split(b";")[0], 16)
            if len(self.raw) < eol + 2 + size + 2:
                break
            self.lines += self.raw[eol + 2:eol + 2 + size]
            self.raw = self.raw[eol + 2 + size + 2:]
            if size == 0:
                break
        while (nl := self.lines.find(b"\n")) >= 0:
            line, self.lines = self.lines[:nl], self.lines[nl + 1:]
            if not line.strip():
                continue
            event = json.loads(line)
            self.events += 1
            rv = event.get("object", {}).get("metadata", {}).get("resourceVersion")
            if rv is not None:
                self.arrivals.setdefault(rv, now)

    def connection_lost(self, exc):
        if not self.headers.done():
            self.headers.set_exception(exc or ConnectionError("closed before headers"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_watch(url, path, token, ca, track=False, semaphore=None):
    host, port, tls = parse_url(url)
    loop = asyncio.get_running_loop()
    req = request_bytes("GET", path, f"{host}:{port}", token)

    async def connect():
        _, proto = await loop.create_connection(
            lambda: Watch(req, track), host, port,
            ssl=ssl_context(ca) if tls else None, server_hostname="localhost" if tls else None)
        status = await asyncio.wait_for(proto.headers, 60)
        if status != 200:
            raise RuntimeError(f"watch {url}{path}: HTTP {status}")
        return proto

    if semaphore is None:
        return await connect()
    async with semaphore:
        return await connect()


class Client:
    """A keep-alive HTTP/1.1 client for the writer (asyncio streams)."""

    def __init__(self, url, token, ca):
        self.host, self.port, self.tls = parse_url(url)
        self.token, self.ca = token, ca

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=ssl_context(self.ca) if self.tls else None,
            server_hostname="localhost" if self.tls else None)

    async def request(self, method, path, body=None, content_type="application/json"):
        self.writer.write(request_bytes(method, path, f"{self.host}:{self.port}", self.token, body, content_type))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        else:
            payload = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                payload += chunk[:-2]
        return status, payload

    def close(self):
        self.writer.close()


SERVICE_PATH = "/api/v1/namespaces/default/services"


async def current_rv(client, name):
    status, body = await client.request("GET", f"{SERVICE_PATH}/{name}")
    if status != 200:
        raise RuntimeError(f"GET service {name}: HTTP {status} {body[:200]!r}")
    return json.loads(body)["metadata"]["resourceVersion"]


async def patch(client, name, counter):
    body = json.dumps({"metadata": {"labels": {"bench-counter": f"{counter:09d}"}}}).encode()
    status, payload = await client.request("PATCH", f"{SERVICE_PATH}/{name}", body, "application/merge-patch+json")
    if status != 200:
        raise RuntimeError(f"PATCH service {name}: HTTP {status} {payload[:200]!r}")
    return json.loads(payload)["metadata"]["resourceVersion"]


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def wait_stdin_closed():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


async def cmd_hold(a):
    sem = asyncio.Semaphore(a.parallel)
    path = f"{SERVICE_PATH}?watch=1&timeoutSeconds={a.timeout}"
    t0 = time.perf_counter()
    results = await asyncio.gather(*(open_watch(a.url, path, a.token, a.ca, semaphore=sem) for _ in range(a.n)),
                                   return_exceptions=True)
    watches = [r for r in results if isinstance(r, Watch)]
    errors = [repr(r) for r in results if not isinstance(r, Watch)]
    emit({"opened": len(watches), "failed": len(errors), "errors": errors[:3],
          "seconds": round(time.perf_counter() - t0, 2)})
    await wait_stdin_closed()
    still_open = sum(1 for w in watches if not w.closed.done())
    for w in watches:
        w.transport.close()
    emit({"still_open": still_open})


async def cmd_relay(a):
    targets = [("direct", a.direct)] + [tuple(v.split("=", 1)) for v in a.via]
    writer = Client(a.direct, a.token, a.ca)
    await writer.connect()
    rv = await current_rv(writer, a.service)
    path = f"{SERVICE_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds={a.events * a.interval + 60:.0f}"
    watches = {}
    for name, url in targets:
        token = a.token if name == "direct" else a.peer_token
        watches[name] = await open_watch(url, path, token, a.ca, track=True)
    await asyncio.sleep(0.5)
    sent = {}
    for i in range(a.events):
        t = time.perf_counter()
        new_rv = await patch(writer, a.service, i)
        sent[new_rv] = t
        await asyncio.sleep(a.interval)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and not all(set(sent) <= set(w.arrivals) for w in watches.values()):
        await asyncio.sleep(0.05)
    direct = watches["direct"].arrivals
    out = {"events": a.events, "interval_s": a.interval, "targets": {}}
    for name, w in watches.items():
        seen = [rv for rv in sent if rv in w.arrivals]
        absolute = [(w.arrivals[rv] - sent[rv]) * 1e3 for rv in seen]
        entry = {"received": len(seen), "p50_ms": percentile(absolute, 50), "p99_ms": percentile(absolute, 99)}
        if name != "direct":
            added = [(w.arrivals[rv] - direct[rv]) * 1e3 for rv in seen if rv in direct]
            entry.update({"added_p50_ms": percentile(added, 50), "added_p99_ms": percentile(added, 99),
                          "added_max_ms": max(added) if added else None})
        out["targets"][name] = entry
        w.transport.close()
    writer.close()
    emit(out)


async def cmd_fanout(a):
    client = Client(a.url, a.token, a.ca)
    await client.connect()
    rv = await current_rv(client, a.service)
    path = f"{SERVICE_PATH}?watch=1&resourceVersion={rv}&timeoutSeconds={a.duration + 120}"
    sem = asyncio.Semaphore(a.parallel)
    t0 = time.perf_counter()
    watches = await asyncio.gather(*(open_watch(a.watch_url or a.url, path, a.watch_token or a.token, a.ca, semaphore=sem)
                                     for _ in range(a.n)))
    emit({"opened": len(watches), "seconds": round(time.perf_counter() - t0, 2)})
    # The harness samples the server's RSS now, then says go.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    writes = 0
    stop = time.perf_counter() + a.duration
    cpu0 = os.times()

    async def write_loop(k):
        nonlocal writes
        c = Client(a.url, a.token, a.ca)
        await c.connect()
        i = 0
        while time.perf_counter() < stop:
            await patch(c, a.service, k * 10_000_000 + i)
            i += 1
            writes += 1
            if a.rate:
                await asyncio.sleep(a.writers / a.rate)
        c.close()

    start = time.perf_counter()
    await asyncio.gather(*(write_loop(k) for k in range(a.writers)))
    writes_done = time.perf_counter()
    expected = writes * len(watches)
    deadline = writes_done + a.drain
    while time.perf_counter() < deadline and sum(w.events for w in watches) < expected:
        await asyncio.sleep(0.05)
    delivered = sum(w.events for w in watches)
    last = max(w.last_arrival for w in watches)
    cpu1 = os.times()
    counts = [w.events for w in watches]
    emit({"watchers": len(watches), "writes": writes, "write_seconds": round(writes_done - start, 3),
          "expected_events": expected, "delivered_events": delivered,
          "min_per_watcher": min(counts), "max_per_watcher": max(counts),
          "delivery_seconds": round(last - start, 3),
          "events_per_second": round(delivered / max(1e-9, last - start)),
          "lag_after_last_write_ms": round((last - writes_done) * 1e3, 1),
          "client_cpu_seconds": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2)})
    for w in watches:
        w.transport.close()
    client.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ca", help="CA bundle for https URLs")
    p.add_argument("--token", help="bearer token for the API server (direct)")
    p.add_argument("--service", default="bench", help="Service in namespace default that the writer patches")
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--url", required=True)
    h.add_argument("--n", type=int, default=1000)
    h.add_argument("--timeout", type=int, default=600, help="timeoutSeconds of each watch")
    h.add_argument("--parallel", type=int, default=32, help="connections opened at once")
    r = sub.add_parser("relay")
    r.add_argument("--direct", required=True, help="API server URL (also the writer's)")
    r.add_argument("--via", action="append", default=[], help="NAME=URL of a proxy (repeatable)")
    r.add_argument("--peer-token", required=True, help="bearer token for the proxies")
    r.add_argument("--events", type=int, default=500)
    r.add_argument("--interval", type=float, default=0.02)
    f = sub.add_parser("fanout")
    f.add_argument("--url", required=True, help="the API server (the writers')")
    f.add_argument("--watch-url", help="where the watchers connect (default: --url), e.g. a proxy")
    f.add_argument("--watch-token", help="the watchers' bearer token (default: --token)")
    f.add_argument("--n", type=int, default=1000)
    f.add_argument("--duration", type=float, default=10)
    f.add_argument("--writers", type=int, default=2)
    f.add_argument("--rate", type=float, default=0, help="total updates/s (0: as fast as the writers go)")
    f.add_argument("--drain", type=float, default=30, help="seconds to wait for delivery after the last write")
    f.add_argument("--parallel", type=int, default=32)
    a = p.parse_args()
    try:
        import uvloop  # noqa: F401  (optional: faster event loop)
        uvloop.install()
    except ImportError:
        pass
    asyncio.run({"hold": cmd_hold, "relay": cmd_relay, "fanout": cmd_fanout}[a.cmd](a))


if __name__ == "__main__":
    main()
