"""A py-consul session of the catalog's second half against signpost, one step at a time.

Usage: py_catalog.py HOST:PORT HTTP_CHECK_URL
Checks registered on their own, an external node registered through the catalog as consul-esm
does, the node reads, a blocking read and deregistration, all with py-consul's own calls. Prints
one JSON line per step and waits for a line on stdin before the next (tests/it/clients_catalog.rs).
"""

import json
import sys

import consul

P = "py"


def say(name, **fields):
    print(json.dumps({"step": name, **fields}), flush=True)


def step(name, **fields):
    say(name, **fields)
    if sys.stdin.readline() == "":
        sys.exit(0)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    target = sys.argv[2]
    c = consul.Consul(host=host, port=int(port))
    svc, ext = f"{P}-svc", f"{P}-ext"

    c.agent.service.register(svc, service_id=f"{svc}-1", address="10.3.1.1", port=80)
    ok = c.agent.check.register(f"{svc} alive", check=consul.Check.ttl("1h"), check_id=f"{P}-alive", service_id=f"{svc}-1")
    step("check_register", result=ok)

    step("check_pass", result=c.agent.check.ttl_pass(f"{P}-alive", notes="up"))

    ok = c.agent.check.register(f"{P}-disk", check=consul.Check.ttl("1h"), notes="the disk of this node")
    step("node_check", result=ok)

    step("node_pass", result=c.agent.check.ttl_pass(f"{P}-disk"))

    checks = c.agent.checks()
    step("agent_checks", checks={k: [v["Status"], v["ServiceID"]] for k, v in checks.items()})

    ok = c.catalog.register(
        ext,
        "10.3.2.1",
        service={"Service": f"{P}-db", "ID": f"{P}-db-1", "Port": 5432, "Tags": ["primary"]},
        check={"Node": ext, "CheckID": "service:db", "Name": "db", "Status": "passing", "ServiceID": f"{P}-db-1"},
    )
    ok2 = c.catalog.register(ext, "10.3.2.1", check={"CheckID": "http", "Name": "http",
                                                    "Definition": {"HTTP": target, "Interval": "200ms"}})
    step("catalog_register", result=[ok, ok2])

    index, _ = c.catalog.nodes()
    say("block", index=int(index))
    index2, nodes = c.catalog.nodes(index=index, wait="30s")
    step("blocked", later=int(index2) > int(index), nodes=[n["Node"] for n in nodes])

    _, node = c.catalog.node(ext)
    _, on_node = c.health.node(ext)
    _, db_checks = c.health.checks(f"{P}-db")
    members = c.agent.members()
    step(
        "reads",
        node=[node["Node"]["Node"], node["Node"]["Address"], sorted(node["Services"])],
        health_node=sorted([h["CheckID"], h["Status"], h["ServiceID"]] for h in on_node),
        db_checks=sorted(h["CheckID"] for h in db_checks),
        datacenters=c.catalog.datacenters(),
        members=[[m["Name"], m["Addr"], m["Port"]] for m in members],
        peers=c.status.peers(),
    )

    ok = c.catalog.register(ext, "10.3.2.1", check={"CheckID": "service:db", "Name": "db", "Status": "critical",
                                                  "ServiceID": f"{P}-db-1"})
    step("external_critical", result=ok)

    ok = [
        c.catalog.deregister(ext, service_id=f"{P}-db-1"),
        c.catalog.deregister(ext),
        c.agent.check.deregister(f"{P}-alive"),
        c.agent.check.deregister(f"{P}-disk"),
    ]
    _, nodes = c.catalog.nodes()
    step("deregister", result=ok, nodes=len(nodes), checks=sorted(c.agent.checks()))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test shows this line and fails on it
        print(json.dumps({"step": "error", "error": repr(e)}), flush=True)
        sys.exit(1)
