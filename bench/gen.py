#!/usr/bin/env python3
"""Generates the DNS benchmark data set in OUTDIR:

  zones/bench.toml   signpost zone file: SERVICES services x 3 instances
  zones-regions/     the same, each service's three instances in regions r0, r1 and r2 (the
                     Client Subnet shape: every answer then runs the region decision)
  nsd/local.zone     the same names as a static RFC 1035 zone, for NSD and Knot
  queries.txt        dnsperf input: 70% A, 20% SRV (half _svcN._tcp), 5% AAAA (NODATA),
                     5% unknown names (NXDOMAIN)

Usage: bench/gen.py OUTDIR [SERVICES] [QUERIES]
"""
import os
import random
import sys

out = sys.argv[1]
services = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
queries = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
os.makedirs(f"{out}/zones", exist_ok=True)
os.makedirs(f"{out}/zones-regions", exist_ok=True)
os.makedirs(f"{out}/nsd", exist_ok=True)


def addr(i, k):
    n = i * 3 + k
    return f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"


for folder, regions in (("zones", False), ("zones-regions", True)):
    with open(f"{out}/{folder}/bench.toml", "w") as z:
        for i in range(services):
            z.write(f'[[service]]\nname = "svc{i}"\n')
            for k in range(3):
                region = f'region = "r{k}"\n' if regions else ""
                z.write(f'\n[[service.instance]]\nid = "svc{i}-{k}"\naddress = "{addr(i, k)}"\nport = 8080\n{region}')
            z.write("\n")

with open(f"{out}/nsd/local.zone", "w") as z:
    z.write("$ORIGIN local.\n$TTL 5\n")
    z.write("@ IN SOA ns.local. hostmaster.local. 1 3600 600 86400 1\n@ IN NS ns.local.\nns IN A 127.0.0.1\n")
    for i in range(services):
        for k in range(3):
            z.write(f"svc{i}.service IN A {addr(i, k)}\n")
        for k in range(3):
            z.write(f"svc{i}.service IN SRV 1 1 8080 svc{i}-{k}.instance.local.\n")
            z.write(f"_svc{i}._tcp.service IN SRV 1 1 8080 svc{i}-{k}.instance.local.\n")
            z.write(f"svc{i}-{k}.instance IN A {addr(i, k)}\n")

rng = random.Random(42)
with open(f"{out}/queries.txt", "w") as q:
    for _ in range(queries):
        i = rng.randrange(services)
        r = rng.random()
        if r < 0.70:
            q.write(f"svc{i}.service.local A\n")
        elif r < 0.80:
            q.write(f"svc{i}.service.local SRV\n")
        elif r < 0.90:
            q.write(f"_svc{i}._tcp.service.local SRV\n")
        elif r < 0.95:
            q.write(f"svc{i}.service.local AAAA\n")
        else:
            q.write(f"nx{i}.service.local A\n")
