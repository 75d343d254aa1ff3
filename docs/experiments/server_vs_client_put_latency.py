"""Where the puts' latency spread lies at saturation: etcd's own gRPC handling vs the client.

The experiment of docs/validation.md, "Thirteenth session". Start an etcd that keeps gRPC
handling histograms (they are off by default):

    etcd --data-dir /tmp/exp-etcd --metrics extensive \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

then, from the repository root (it writes keys under /tracesim-experiment/ and deletes them):

    python docs/experiments/server_vs_client_put_latency.py lease,node 8,32,128,256

For each value size and concurrency it runs the calibration's closed loop of puts for 2 s
and prints, at etcd's histogram bounds, the share of puts below each bound as etcd's
``grpc_server_handling_seconds{grpc_method="Put"}`` counts them (from the Put handler's
entry to its return) and as the client measures them (the whole round trip through the HTTP
gateway and the client's event loop).
"""

import asyncio
import re
import sys

import numpy as np

from tracesim.calibrate.client import EtcdClient
from tracesim.calibrate.workload import SIZES_BYTES, closed_loop

ENDPOINT = "http://127.0.0.1:2379"
PREFIX = b"/tracesim-experiment/"
BUCKET = re.compile(r'grpc_server_handling_seconds_bucket\{.*grpc_method="Put".*le="([^"]+)"')


async def put_buckets(client: EtcdClient) -> dict[float, float]:
    """Cumulative count of Put handlings per upper bound (s) so far."""
    async with client._session.get(ENDPOINT + "/metrics") as response:
        text = await response.text()
    out: dict[float, float] = {}
    for line in text.splitlines():
        match = BUCKET.match(line)
        if match:
            out[float(match.group(1))] = float(line.split()[-1])
    if not out:
        sys.exit("etcd has no Put handling histogram: start it with --metrics extensive")
    return out


async def main(size_classes: list[str], concurrencies: list[int]) -> None:
    async with EtcdClient(ENDPOINT) as client:
        try:
            for size_class in size_classes:
                value = np.random.default_rng(0).bytes(SIZES_BYTES[size_class])
                for conc in concurrencies:

                    async def put(c: int, _i: int, value: bytes = value) -> None:
                        await client.put(PREFIX + str(c).encode(), value)

                    before = await put_buckets(client)
                    lat_s, elapsed_s, _errors = await closed_loop(conc, 2.0, 10**9, put)
                    after = await put_buckets(client)
                    bounds = [b for b in sorted(after) if b <= 0.25]
                    total = after[max(after)] - before.get(max(after), 0.0)
                    ms = lat_s * 1e3
                    print(
                        f"{size_class} at {conc} in flight: {len(ms)} puts, "
                        f"{len(ms) / elapsed_s:.0f}/s; client mean {ms.mean():.2f} ms, "
                        f"p50 {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"
                    )
                    server = [(after[b] - before.get(b, 0.0)) / total for b in bounds]
                    client_share = [float((lat_s < b).mean()) for b in bounds]
                    for name, shares in (("etcd's Put handler", server), ("client", client_share)):
                        pairs = zip(bounds, shares, strict=True)
                        cells = "  ".join(f"<{b * 1e3:g} ms {s:.3f}" for b, s in pairs)
                        print(f"    {name:18s} {cells}")
        finally:
            await client.delete_prefix(PREFIX)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1].split(","), [int(c) for c in sys.argv[2].split(",")]))
