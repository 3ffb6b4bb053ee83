"""A hostile user against `endpointctl serve` (not part of the suite; run by hand):

    .venv/bin/python -m tests.local.hostile_run [--requests 10000]

Sends generated requests — bodies of any bytes, JSON and CSV with numbers of any
magnitude, every codec name as a charset, odd content types and accepts, malformed HTTP
as raw bytes — from several threads, then opens 100 slow connections and times /ping,
then stops the server and lists what it left in its temp directory. Prints the counts
by status; exits 1 if a client mistake got a 5xx (501 for an unknown Transfer-Encoding
aside), if /ping took 5 s or more, or if anything was left behind.
"""

from __future__ import annotations

import argparse
import collections
import encodings.aliases
import http.client
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from endpointctl.local import LocalEndpoint
from endpointctl.training import write_sample_model
from tests.handler.test_image_parity import MALFORMED_DIFFERENCES
from tests.local.test_local_endpoint import MALFORMED_HTTP, open_slow_connections, raw_exchange

CODECS = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                | {"undefined", "punycode", "idna", "rot13", "base64", "klingon", "utf-8\x00"})
MEDIA = ["application/json"] * 4 + ["text/csv"] * 4 + ["application/xml", "", "text/plain", "application/x-npy", "Text/CSV"]
ACCEPTS = ["application/json", "text/csv", "*/*", "", "image/png", "text/*", "application/*, text/csv;q=0.1", "\x7f"]
MAGNITUDES = ["0", "-0", "1e39", "-3.5e38", "3.4028235e38", "1e308", "1e309", "-1e400", "5e-324", "nan", "inf", "-Infinity",
              "1" + "0" * 40, "1" + "0" * 400, "0x10", "1_0", "", " ", "\"1\"", "true", "null"]


def number(rng: random.Random) -> str:
    return rng.choice(MAGNITUDES) if rng.random() < 0.3 else repr(rng.uniform(-10, 10) * 10 ** rng.randint(-40, 40))


def body(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 400))
    rows = [[number(rng) for _ in range(rng.choice([5, 5, 5, 3, 0, 7]))] for _ in range(rng.randint(0, 6))]
    if kind in (1, 2):
        return "\n".join(",".join(row) for row in rows).encode() + rng.choice([b"", b"\n", b"\r\n", b"\n\n"])
    if kind == 3:
        return ('{"instances": [' + ", ".join("[" + ", ".join(row) + "]" for row in rows) + "]}").encode()
    if kind == 4:
        return json.dumps(rng.choice([{"instances": []}, [], {}, "x", 1, {"instances": [[[1]]]}, {"instances": [[1, {}]]}])).encode()
    return ("[" * rng.randint(1, 3000)).encode()


def content_type(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    media = rng.choice(MEDIA)
    return f"{media}; charset={rng.choice(CODECS)}" if rng.random() < 0.4 else media


def one_request(seed: int, port: int) -> tuple[str, int | str]:
    rng = random.Random(seed)
    if rng.random() < 0.08:  # malformed HTTP, as raw bytes
        name, data = rng.choice(list(MALFORMED_HTTP.items()) + [(k, v[0]) for k, v in MALFORMED_DIFFERENCES.items()])
        answer = raw_exchange(port, data, timeout=10)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else "no answer"
        return f"raw: {name}", status
    headers = {}
    media = content_type(rng)
    if media is not None:
        headers["Content-Type"] = media
    accept = rng.choice(ACCEPTS)
    if accept != "\x7f":
        headers["Accept"] = accept
    method, path = ("POST", "/invocations") if rng.random() < 0.9 else (rng.choice(["GET", "PUT", "DELETE", "HEAD", "OPTIONS"]),
                                                                         rng.choice(["/ping", "/invocations", "/x", "//ping"]))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body(rng), headers=headers)
        response = connection.getresponse()
        response.read()
        return f"{method} {path}", response.status
    except (OSError, http.client.HTTPException) as error:
        return f"{method} {path}", f"{type(error).__name__}"
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hostile-"))
    model = write_sample_model(scratch / "model.tar.gz", rows=3000)
    server_tmp = scratch / "server-tmp"
    server_tmp.mkdir()
    counts: collections.Counter = collections.Counter()
    bad: list[tuple[str, object]] = []
    with LocalEndpoint(model_data=model, workers=2, env={"TMPDIR": str(server_tmp)}) as endpoint:
        started = time.monotonic()
        with ThreadPoolExecutor(args.threads) as pool:
            for what, status in pool.map(lambda seed: one_request(seed, endpoint.port), range(args.requests)):
                counts[status] += 1
                if isinstance(status, int) and status >= 500 and not (status == 501 and "Transfer-Encoding" in what):
                    bad.append((what, status))
        elapsed = time.monotonic() - started
        slow = open_slow_connections(endpoint.port, 100)
        try:
            pings = []
            for _ in range(5):
                t = time.monotonic()
                with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=30) as response:
                    assert response.status == 200
                pings.append(time.monotonic() - t)
        finally:
            for connection in slow:
                connection.close()
        alive = endpoint.process.poll() is None
    left = sorted(str(p.relative_to(server_tmp)) for p in server_tmp.rglob("*"))
    shutil.rmtree(scratch)
    print(f"{args.requests} requests in {elapsed:.1f} s from {args.threads} threads; by status: "
          f"{dict(sorted(counts.items(), key=str))}")
    print(f"5xx for a client mistake: {len(bad)} {bad[:5]}")
    print(f"/ping with 100 slow connections open: {', '.join(f'{p * 1000:.0f} ms' for p in pings)}; server alive: {alive}")
    print(f"left in the server's temp directory: {left or 'nothing'}")
    return 0 if not bad and max(pings) < 5 and not left and alive else 1


if __name__ == "__main__":
    sys.exit(main())
