// node-consul over HTTPS (`secure: true`, `ca`) with client certificates and a token scoped to
// its team's services.
//
// Usage: node node_tls.js HOST:PORT CA CLIENT_CERT CLIENT_KEY TOKEN
// Prints one JSON object: what each call did ("ok", or the HTTP status of a refusal), so that the
// Rust test (tests/it/acl_clients.rs) can check it and then check DNS.

const fs = require("fs");
const Consul = require("consul");

async function attempt(call) {
  try {
    await call();
    return "ok";
  } catch (e) {
    const status = e.response && e.response.statusCode;
    // The server's one-line reason is the body; the error's message is the status text.
    return status ? `${status} ${e.response.body}` : `${e.name}: ${e.message}`;
  }
}

async function main() {
  const [host, port] = process.argv[2].split(":");
  const [ca, cert, key, token] = process.argv.slice(3, 7).map((p, i) => (i < 3 ? fs.readFileSync(p) : p));
  const consul = new Consul({ host, port: Number(port), secure: true, ca, cert, key, defaults: { token } });
  const out = {
    own: await attempt(() =>
      consul.agent.service.register({
        name: "payment-node",
        id: "payment-node-1",
        address: "10.6.0.1",
        port: 80,
        check: { ttl: "30s" },
      }),
    ),
    pass: await attempt(() => consul.agent.check.pass({ id: "service:payment-node-1", note: "from node over TLS" })),
    other: await attempt(() =>
      consul.agent.service.register({ name: "orders", id: "orders-node", address: "10.6.0.2", port: 80 }),
    ),
    other_by_id: await attempt(() => consul.agent.service.deregister("orders-1")),
    read: (await consul.health.service({ service: "payment-node", passing: true })).map((n) => n.Service.ID),
  };
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: `${e.name}: ${e.message}` }));
  process.exit(1);
});
