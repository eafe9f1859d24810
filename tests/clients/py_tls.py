"""py-consul over HTTPS with client certificates and a token scoped to its team's services.

Usage: py_tls.py HOST:PORT CA CLIENT_CERT CLIENT_KEY TOKEN
Prints one JSON object: what each call did ("ok", or the HTTP status of a refusal), so that the
Rust test (tests/it/acl_clients.rs) can check it and then check DNS.
"""

import json
import sys

import consul


def attempt(call):
    try:
        call()
        return "ok"
    except consul.ACLPermissionDenied as e:
        return f"403 {e}"
    except Exception as e:  # pylint: disable=broad-except
        return f"{type(e).__name__}: {e}"


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    ca, cert, key, token = sys.argv[2:6]
    c = consul.Consul(host=host, port=int(port), scheme="https", verify=ca, cert=(cert, key), token=token)
    out = {
        "own": attempt(
            lambda: c.agent.service.register(
                "payment-py", service_id="payment-py-1", address="10.5.0.1", port=80, check=consul.Check.ttl("30s")
            )
        ),
        "pass": attempt(lambda: c.agent.check.ttl_pass("service:payment-py-1", "from python over TLS")),
        "other": attempt(lambda: c.agent.service.register("orders", service_id="orders-py", address="10.5.0.2", port=80)),
        "other_by_id": attempt(lambda: c.agent.service.deregister("orders-1")),
        "read": [n["Service"]["ID"] for n in c.health.service("payment-py", passing=True)[1]],
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
