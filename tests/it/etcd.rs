//! A real etcd cluster for the cluster-mode tests: Debian's `etcd` binary (package etcd-server,
//! installed by scripts/test.sh), N members on loopback ports with data dirs in a temp folder.
//! Members are stopped and started by their child process; starts wait for `/health` with a
//! deadline, never for a fixed time. `start_secure` serves clients over TLS only, with client
//! certificates required (`--client-cert-auth`) and etcd's authentication enabled, users and
//! roles made with etcdctl (Debian's etcd-client).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

/// How long a member (or the whole cluster) may take to report healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

pub struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial_cluster: String,
    secure: Option<Secure>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    /// `/health` and `/metrics` over plain HTTP: the client port when it speaks HTTP, a port of
    /// their own when it speaks TLS.
    metrics: u16,
    child: Option<Child>,
}

/// The files of a cluster that speaks TLS to its clients.
pub struct Secure {
    pub ca: PathBuf,
    server: (PathBuf, PathBuf),
    /// A client certificate etcd accepts (and its key), for etcdctl and the replicas.
    pub client: (PathBuf, PathBuf),
}

/// The user replicas authenticate as in `start_secure`, with readwrite on `/signpost/`, and a user
/// without any role.
pub const USER: &str = "signpost";
pub const PASSWORD: &str = "s1gnp0st-etcd";
pub const NOBODY: &str = "nobody";
const ROOT_PASSWORD: &str = "r00t-etcd";

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }
}

impl Etcd {
    /// Starts a cluster of `n` members and waits until every one is healthy.
    pub async fn start(n: usize) -> Etcd {
        Etcd::launch(n, None).await
    }

    /// Like `start`, with clients served over TLS only (certificates from `pki`), client
    /// certificates required, and authentication enabled: `USER` may read and write
    /// `/signpost/`, `NOBODY` nothing.
    pub async fn start_secure(n: usize, pki: &crate::pki::Pki) -> Etcd {
        use crate::pki::Usage;
        let secure = Secure {
            ca: pki.ca(),
            server: pki.files("etcd-server", Usage::Server),
            client: pki.files("etcd-client", Usage::Client),
        };
        let etcd = Etcd::launch(n, Some(secure)).await;
        let root = format!("root:{ROOT_PASSWORD}");
        etcd.etcdctl(&["user", "add", &root, "--interactive=false"]);
        etcd.etcdctl(&["auth", "enable"]);
        // The signpost user and role as README's Security section makes them, run as written.
        let password = etcd.dir.path().join("password");
        std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        let block = crate::cli::readme_block("sh", "etcdctl role add signpost")
            .replace("/etc/signpost/etcd/password", password.to_str().unwrap());
        let s = etcd.secure();
        let out = Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\n{block}")])
            .env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", format!("https://127.0.0.1:{}", etcd.members[0].client))
            .env("ETCDCTL_CACERT", &s.ca)
            .env("ETCDCTL_CERT", &s.client.0)
            .env("ETCDCTL_KEY", &s.client.1)
            .env("ETCDCTL_USER", &root)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{block}\n{text}");
        etcd.etcdctl(&["user", "add", &format!("{NOBODY}:{PASSWORD}"), "--interactive=false"]);
        etcd
    }

    async fn launch(n: usize, secure: Option<Secure>) -> Etcd {
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let client = free_port();
                let metrics = if secure.is_some() { free_port() } else { client };
                Member { name: format!("m{i}"), client, peer: free_port(), metrics, child: None }
            })
            .collect();
        let initial_cluster =
            members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let mut etcd = Etcd { dir: tempfile::tempdir().unwrap(), members, initial_cluster, secure };
        for i in 0..n {
            etcd.spawn(i);
        }
        for i in 0..n {
            etcd.wait_healthy(i).await;
        }
        etcd
    }

    /// Runs etcdctl against member 0 with the client certificate (as root once auth is on).
    fn etcdctl(&self, args: &[&str]) {
        let secure = self.secure.as_ref().expect("a secure cluster");
        let root = format!("root:{ROOT_PASSWORD}");
        let out = Command::new("etcdctl")
            .arg(format!("--endpoints=https://127.0.0.1:{}", self.members[0].client))
            .args([format!("--cacert={}", secure.ca.display()), format!("--cert={}", secure.client.0.display())])
            .arg(format!("--key={}", secure.client.1.display()))
            .args(if args[0] == "user" && args[1] == "add" && args[2].starts_with("root:") {
                vec![]
            } else {
                vec![format!("--user={root}")]
            })
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl runs (Debian package etcd-client; scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `etcd://127.0.0.1:P1,127.0.0.1:P2,...`, for `--store`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| format!("127.0.0.1:{}", m.client)).collect();
        format!("etcd://{}", hosts.join(","))
    }

    /// Where member `i` serves clients.
    pub fn client_addr(&self, i: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.members[i].client))
    }

    /// The store's current revision, read from member `i` with etcdctl.
    pub fn revision(&self, i: usize) -> u64 {
        let out = self.plain_etcdctl(i, &["endpoint", "status", "-w", "json"]);
        let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        status[0]["Status"]["header"]["revision"].as_u64().unwrap_or_else(|| panic!("no revision in {out}"))
    }

    /// `etcdctl compact REVISION --physical` on member `i`: every older revision is gone.
    pub fn compact(&self, i: usize, revision: u64) {
        self.plain_etcdctl(i, &["compact", &revision.to_string(), "--physical"]);
    }

    /// Runs etcdctl against member `i` of a cluster without TLS; its output.
    fn plain_etcdctl(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .arg(format!("--endpoints=http://127.0.0.1:{}", self.members[i].client))
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl runs (Debian package etcd-client; scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "etcdctl {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    }

    /// The TLS files of a cluster from `start_secure`.
    pub fn secure(&self) -> &Secure {
        self.secure.as_ref().expect("a secure cluster")
    }

    /// Kills member `i` (SIGKILL: a crash, as a machine failure would look).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again over its data dir and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// Starts every stopped member again, then waits until all are healthy (a member alone is
    /// not healthy without a quorum, so they must all be started first).
    pub async fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i);
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i).await;
        }
    }

    /// The index of the member that is the raft leader now, from each member's metrics.
    pub async fn leader(&self) -> Option<usize> {
        let http = crate::support::http_client();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let url = format!("http://127.0.0.1:{}/metrics", m.metrics);
            let Ok(resp) = http.get(url).send().await else { continue };
            let text = resp.text().await.unwrap_or_default();
            if text.lines().any(|l| l.trim() == "etcd_server_is_leader 1") {
                return Some(i);
            }
        }
        None
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap();
        let scheme = if self.secure.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let tls: Vec<String> = match &self.secure {
            Some(s) => vec![
                format!("--listen-metrics-urls=http://127.0.0.1:{}", m.metrics),
                format!("--cert-file={}", s.server.0.display()),
                format!("--key-file={}", s.server.1.display()),
                format!("--trusted-ca-file={}", s.ca.display()),
                "--client-cert-auth".into(),
            ],
            None => vec![],
        };
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir", data.to_str().unwrap()])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(tls)
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "signpost-test", "--log-level", "warn", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd runs (Debian package etcd-server; scripts/test.sh installs it)");
        self.members[i].child = Some(child);
    }

    async fn wait_healthy(&self, i: usize) {
        let m = &self.members[i];
        let url = format!("http://127.0.0.1:{}/health", m.metrics);
        let http = crate::support::http_client();
        let start = Instant::now();
        loop {
            if let Ok(resp) = http.get(&url).timeout(Duration::from_secs(2)).send().await
                && resp.text().await.is_ok_and(|t| t.contains("\"health\":\"true\""))
            {
                return;
            }
            let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name))).unwrap_or_default();
            assert!(start.elapsed() < HEALTHY_WITHIN, "etcd member {} not healthy in time; its log:\n{log}", m.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
