//! A real etcd cluster for the cluster-mode tests: Debian's `etcd` binary (package etcd-server,
//! installed by scripts/test.sh), N members on loopback ports with data dirs in a temp folder.
//! Members are stopped and started by their child process; starts wait for `/health` with a
//! deadline, never for a fixed time.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a member (or the whole cluster) may take to report healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

pub struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial_cluster: String,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    /// Starts a cluster of `n` members and waits until every one is healthy.
    pub async fn start(n: usize) -> Etcd {
        let members: Vec<Member> = (0..n)
            .map(|i| Member { name: format!("m{i}"), client: free_port(), peer: free_port(), child: None })
            .collect();
        let initial_cluster =
            members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let mut etcd = Etcd { dir: tempfile::tempdir().unwrap(), members, initial_cluster };
        for i in 0..n {
            etcd.spawn(i);
        }
        for i in 0..n {
            etcd.wait_healthy(i).await;
        }
        etcd
    }

    /// `etcd://127.0.0.1:P1,127.0.0.1:P2,...`, for `--store`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| format!("127.0.0.1:{}", m.client)).collect();
        format!("etcd://{}", hosts.join(","))
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
            let url = format!("http://127.0.0.1:{}/metrics", m.client);
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
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir", data.to_str().unwrap()])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
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
        let url = format!("http://127.0.0.1:{}/health", m.client);
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
