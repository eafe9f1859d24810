// A node-consul session against signpost, one step at a time.
//
// Usage: node node_session.js HOST:PORT HTTP_CHECK_URL
// Prints one JSON line per step, then waits for a line on stdin before the next step, so that
// the Rust test (tests/it/clients.rs) can check each step with a DNS query. Errors end the
// session with a JSON line {"step": "error", "error": ...}.

const readline = require("readline");
const Consul = require("consul");

const PREFIX = "node";
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(name, fields) {
  console.log(JSON.stringify({ step: name, ...fields }));
  const next = await lines.next();
  if (next.done) process.exit(0);
}

const checks = (entry) => entry.Checks.map((c) => ({ id: c.CheckID, status: c.Status, output: c.Output }));

async function main() {
  const [host, port] = process.argv[2].split(":");
  const target = process.argv[3];
  const consul = new Consul({ host, port: Number(port) });
  const web = `${PREFIX}-web`;
  const api = `${PREFIX}-api`;

  await consul.agent.service.register({
    name: web,
    id: `${web}-1`,
    address: "10.4.0.1",
    port: 8080,
    tags: ["v1"],
    meta: { version: "1.0" },
    check: { ttl: "30s" },
  });
  await step("register_ttl", { result: true });

  await consul.agent.service.register({
    name: api,
    id: `${api}-1`,
    address: "127.0.0.1",
    port: 8081,
    check: { http: target, interval: "1s", timeout: "1s" },
  });
  await step("register_http", { result: true });

  let nodes = await consul.health.service({ service: web, passing: true });
  await step("health_before", { ids: nodes.map((n) => n.Service.ID) });

  await consul.agent.check.pass({ id: `service:${web}-1`, note: "ok from node" });
  await step("ttl_pass", { result: true });

  nodes = await consul.health.service({ service: web, passing: true });
  await step("health_after", {
    ids: nodes.map((n) => n.Service.ID),
    address: nodes[0].Service.Address,
    port: nodes[0].Service.Port,
    checks: checks(nodes[0]),
  });

  nodes = await consul.health.service({ service: api, passing: true });
  await step("health_http", { ids: nodes.map((n) => n.Service.ID), checks: nodes.length ? checks(nodes[0]) : [] });

  const services = await consul.catalog.service.list();
  const instances = await consul.catalog.service.nodes(web);
  const agent = await consul.agent.service.list();
  await step("catalog", {
    services: Object.fromEntries(Object.entries(services).filter(([k]) => k.startsWith(PREFIX))),
    instances: instances.map((i) => ({
      id: i.ServiceID,
      address: i.ServiceAddress,
      port: i.ServicePort,
      meta: i.ServiceMeta,
    })),
    agent: Object.keys(agent)
      .filter((k) => k.startsWith(PREFIX))
      .sort(),
  });

  const self = await consul.agent.self();
  const passing = await consul.health.state("passing");
  await step("agent", {
    node: self.Config.NodeName,
    passing: passing
      .filter((c) => c.ServiceName.startsWith(PREFIX))
      .map((c) => c.CheckID)
      .sort(),
  });

  await consul.agent.service.deregister(`${web}-1`);
  await consul.agent.service.deregister({ id: `${api}-1` });
  await step("deregister", { result: [true, true] });

  nodes = await consul.health.service(web);
  await step("gone", { ids: nodes.map((n) => n.Service.ID) });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(JSON.stringify({ step: "error", error: `${e.name}: ${e.message}` }));
    process.exit(1);
  },
);
