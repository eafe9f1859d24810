// A node-consul session of the catalog's second half against signpost, one step at a time.
//
// Usage: node node_catalog.js HOST:PORT HTTP_CHECK_URL
// Checks registered on their own, an external node registered through the catalog as consul-esm
// does, the node reads, a blocking read and deregistration, all with node-consul's own calls.
// Prints one JSON line per step and waits for a line on stdin before the next
// (tests/it/clients_catalog.rs).

const readline = require("readline");
const Consul = require("consul");

const P = "node";
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const say = (name, fields) => console.log(JSON.stringify({ step: name, ...fields }));

async function step(name, fields) {
  say(name, fields);
  const next = await lines.next();
  if (next.done) process.exit(0);
}

async function main() {
  const [host, port] = process.argv[2].split(":");
  const target = process.argv[3];
  const consul = new Consul({ host, port: Number(port) });
  const svc = `${P}-svc`;
  const ext = `${P}-ext`;

  await consul.agent.service.register({ name: svc, id: `${svc}-1`, address: "10.4.1.1", port: 80 });
  await consul.agent.check.register({ name: `${svc} alive`, id: `${P}-alive`, serviceid: `${svc}-1`, ttl: "1h" });
  await step("check_register", { result: true });

  await consul.agent.check.pass({ id: `${P}-alive`, note: "up" });
  await step("check_pass", { result: true });

  await consul.agent.check.register({ name: `${P}-disk`, ttl: "1h", notes: "the disk of this node" });
  await step("node_check", { result: true });

  await consul.agent.check.pass(`${P}-disk`);
  await step("node_pass", { result: true });

  const checks = await consul.agent.check.list();
  const shown = Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, [v.Status, v.ServiceID]]));
  await step("agent_checks", { checks: shown });

  await consul.catalog.register({
    node: ext,
    address: "10.4.2.1",
    service: { service: `${P}-db`, id: `${P}-db-1`, port: 5432, tags: ["primary"] },
    check: { node: ext, checkid: "service:db", name: "db", status: "passing", serviceid: `${P}-db-1` },
  });
  await consul.catalog.register({
    node: ext,
    address: "10.4.2.1",
    check: { checkid: "http", name: "http", definition: { http: target, intervalduration: "200ms" } },
  });
  await step("catalog_register", { result: [true, true] });

  // node-consul's blocking reads: a watch on catalog.nodes (its method, catalog.node.list, wants
  // `this.consul`), whose first change is the current state and whose
  // next one comes once the index moves.
  const watch = consul.watch({ method: consul.catalog.node.list, options: {} });
  const changes = [];
  let wake = () => {};
  watch.on("change", (data, res) => {
    changes.push([data, res.headers["x-consul-index"]]);
    wake();
  });
  watch.on("error", (e) => {
    console.log(JSON.stringify({ step: "error", error: String(e) }));
    process.exit(1);
  });
  const change = async (n) => {
    while (changes.length < n) await new Promise((r) => (wake = r));
    return changes[n - 1];
  };
  const [, index] = await change(1);
  say("block", { index: Number(index) });
  const [nodes, later] = await change(2);
  watch.end();
  await step("blocked", { later: BigInt(later) > BigInt(index), nodes: nodes.map((n) => n.Node) });

  const node = await consul.catalog.node.services(ext);
  const onNode = await consul.health.node(ext);
  const dbChecks = await consul.health.checks(`${P}-db`);
  const members = await consul.agent.members();
  await step("reads", {
    node: [node.Node.Node, node.Node.Address, Object.keys(node.Services).sort()],
    health_node: onNode.map((h) => [h.CheckID, h.Status, h.ServiceID]).sort(),
    db_checks: dbChecks.map((h) => h.CheckID).sort(),
    datacenters: await consul.catalog.datacenters(),
    members: members.map((m) => [m.Name, m.Addr, m.Port]),
    peers: await consul.status.peers(),
  });

  await consul.catalog.register({
    node: ext,
    address: "10.4.2.1",
    check: { checkid: "service:db", name: "db", status: "critical", serviceid: `${P}-db-1` },
  });
  await step("external_critical", { result: true });

  await consul.catalog.deregister({ node: ext, serviceid: `${P}-db-1` });
  await consul.catalog.deregister(ext);
  await consul.agent.check.deregister(`${P}-alive`);
  await consul.agent.check.deregister(`${P}-disk`);
  const left = await consul.catalog.nodes();
  const after = await consul.agent.check.list();
  await step("deregister", { result: [true, true, true, true], nodes: left.length, checks: Object.keys(after).sort() });
}

main().catch((e) => {
  console.log(JSON.stringify({ step: "error", error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
