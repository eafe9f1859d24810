"""A py-consul session against signpost, one step at a time.

Usage: py_session.py HOST:PORT HTTP_CHECK_URL
Prints one JSON line per step, then waits for a line on stdin before the next step, so that the
Rust test (tests/it/clients.rs) can check each step with a DNS query. Errors end the session with
a JSON line {"step": ..., "error": ...}.
"""

import json
import sys

import consul

PREFIX = "py"


def step(name, **fields):
    print(json.dumps({"step": name, **fields}), flush=True)
    if sys.stdin.readline() == "":
        sys.exit(0)


def checks(entry):
    return [{"id": c["CheckID"], "status": c["Status"], "output": c["Output"]} for c in entry["Checks"]]


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    target = sys.argv[2]
    c = consul.Consul(host=host, port=int(port))
    web, api = f"{PREFIX}-web", f"{PREFIX}-api"

    ok = c.agent.service.register(
        web,
        service_id=f"{web}-1",
        address="10.3.0.1",
        port=8080,
        tags=["v1"],
        meta={"version": "1.0"},
        check=consul.Check.ttl("30s"),
    )
    step("register_ttl", result=ok)

    ok = c.agent.service.register(
        api, service_id=f"{api}-1", address="127.0.0.1", port=8081, check=consul.Check.http(target, "1s", timeout="1s")
    )
    step("register_http", result=ok)

    index, nodes = c.health.service(web, passing=True)
    step("health_before", index=index, ids=[n["Service"]["ID"] for n in nodes])

    ok = c.agent.check.ttl_pass(f"service:{web}-1", "ok from python")
    step("ttl_pass", result=ok)

    index, nodes = c.health.service(web, passing=True)
    step(
        "health_after",
        index=index,
        ids=[n["Service"]["ID"] for n in nodes],
        address=nodes[0]["Service"]["Address"],
        port=nodes[0]["Service"]["Port"],
        checks=checks(nodes[0]),
    )

    index, nodes = c.health.service(api, passing=True)
    step("health_http", ids=[n["Service"]["ID"] for n in nodes], checks=checks(nodes[0]) if nodes else [])

    _, services = c.catalog.services()
    _, instances = c.catalog.service(web)
    agent = c.agent.services()
    step(
        "catalog",
        services={k: v for k, v in services.items() if k.startswith(PREFIX)},
        instances=[
            {"id": i["ServiceID"], "address": i["ServiceAddress"], "port": i["ServicePort"], "meta": i["ServiceMeta"]}
            for i in instances
        ],
        agent=sorted(k for k in agent if k.startswith(PREFIX)),
    )

    me = c.agent.self()
    _, passing = c.health.state("passing")
    step(
        "agent",
        node=me["Config"]["NodeName"],
        passing=sorted(ch["CheckID"] for ch in passing if ch["ServiceName"].startswith(PREFIX)),
        service=c.agent.service_definition(f"{web}-1")["ID"],
        unknown=c.agent.service_definition(f"{web}-nope"),
    )

    step("deregister", result=[c.agent.service.deregister(f"{web}-1"), c.agent.service.deregister(f"{api}-1")])

    index, nodes = c.health.service(web)
    step("gone", ids=[n["Service"]["ID"] for n in nodes])


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # pylint: disable=broad-except
        print(json.dumps({"step": "error", "error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)
