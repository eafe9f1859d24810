//! A real DNS-SD client through signpost: Avahi (avahi-daemon in wide-area mode, with signpost as
//! its unicast DNS server, and avahi-browse) finds the browse domain, enumerates the service
//! types, browses, resolves each instance (SRV, TXT, the target's address), and the test then
//! connects to what it resolved. avahi-daemon reads its servers from /etc/resolv.conf and talks
//! to clients over the system D-Bus, so it runs in a private mount namespace (`unshare -m`, a
//! resolv.conf of its own bind-mounted) with a D-Bus daemon of the test's; it asks port 53 only,
//! so signpost listens on a 127.x address of its own there. Avahi treats `.local` as multicast
//! DNS's, so the domain is `sd.internal`, as README says. It may use loopback only: no multicast leaves the host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::register;
use crate::support::*;

/// An address of our own on port 53 (Avahi asks no other port), free on this host; not those
/// the forwarding tests take.
fn free_port_53() -> SocketAddr {
    for last in 16..24 {
        let addr = SocketAddr::from(([127, 53, 0, last], 53));
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free 127.53.0.x:53 for the Avahi test (tests run as root; is something holding them?)");
}

/// A service instance that greets whoever connects with its id.
async fn greeter(id: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(format!("hello from {id}\n").as_bytes()).await;
        }
    });
    port
}

const DBUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=BUS</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

/// Wide-area on, multicast on loopback only, nothing published.
const AVAHI_CONF: &str = "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=lo\nenable-dbus=yes\n\
                          [wide-area]\nenable-wide-area=yes\n[publish]\ndisable-publishing=yes\n";

/// Starts the bus and avahi-daemon in the namespace, waits until Avahi runs (server state 2),
/// then runs each command and prints its output after `== <command>`.
const SCRIPT: &str = r#"set -e
d="$1"
mount --bind "$d/resolv.conf" /etc/resolv.conf
mkdir -p /run/avahi-daemon
mount --bind "$d/run" /run/avahi-daemon
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$d/bus"
dbus-daemon --config-file="$d/dbus.conf" --nofork --nopidfile >"$d/dbus.log" 2>&1 &
bus=$!
i=0
until [ -S "$d/bus" ]; do
  i=$((i + 1))
  if [ $i -gt 400 ]; then echo "dbus-daemon did not start:"; cat "$d/dbus.log"; exit 1; fi
  sleep 0.05
done
avahi-daemon -f "$d/avahi.conf" --no-drop-root --no-chroot --no-rlimits >"$d/avahi.log" 2>&1 &
avahi=$!
trap 'kill $avahi $bus 2>/dev/null; wait' EXIT
i=0
until dbus-send --system --print-reply --dest=org.freedesktop.Avahi / org.freedesktop.Avahi.Server.GetState 2>/dev/null | grep -q 'int32 2'; do
  i=$((i + 1))
  if [ $i -gt 400 ]; then echo "avahi-daemon did not start:"; cat "$d/avahi.log" "$d/dbus.log"; exit 1; fi
  sleep 0.05
done
run() { echo "== $*"; timeout 20 "$@"; }
run avahi-browse -D -t -p -d sd.internal
run avahi-browse -a -r -t -p -d service.sd.internal
run avahi-browse -r -t -p -d service.sd.internal _v1._sub._web._tcp
"#;

/// One resolved instance, from avahi-browse's parsable `=` line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Resolved {
    name: String,
    service_type: String,
    domain: String,
    host: String,
    address: String,
    port: u16,
    txt: BTreeSet<String>,
}

fn resolved(section: &str) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = section
        .lines()
        .filter(|l| l.starts_with("=;"))
        .map(|l| {
            let f: Vec<&str> = l.splitn(10, ';').collect();
            let txt = f[9].split("\" \"").map(|t| t.trim_matches('"').to_string()).filter(|t| !t.is_empty());
            Resolved {
                name: f[3].into(),
                service_type: f[4].into(),
                domain: f[5].into(),
                host: f[6].into(),
                address: f[7].into(),
                port: f[8].parse().unwrap(),
                txt: txt.collect(),
            }
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avahi_browses_resolves_and_connects_through_signpost() {
    let addr = free_port_53();
    let s = server().config(&format!("[dns]\nlisten = [\"{addr}\"]\ndomain = \"sd.internal\"\n")).start().await;
    let ports = BTreeMap::from([("web-1", greeter("web-1").await), ("web-2", greeter("web-2").await)]);
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": ports["web-1"],
                        "Tags": ["v1"], "Meta": {"path": "/orders", "version": "2"}}),
    )
    .await;
    register(&s, json!({"Name": "web", "ID": "web-2", "Address": "127.0.0.1", "Port": ports["web-2"]})).await;
    // Registered but not healthy: never browsed to.
    register(&s, json!({"Name": "web", "ID": "web-3", "Address": "127.0.0.1", "Port": 1, "Check": {"TTL": "1m"}}))
        .await;
    register(&s, json!({"Name": "db", "ID": "db-1", "Address": "127.0.0.1", "Port": 5432})).await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("resolv.conf"), format!("nameserver {}\nsearch sd.internal\n", addr.ip())).unwrap();
    std::fs::write(d.join("dbus.conf"), DBUS_CONF.replace("BUS", &d.join("bus").display().to_string())).unwrap();
    std::fs::write(d.join("avahi.conf"), AVAHI_CONF).unwrap();
    std::fs::create_dir(d.join("run")).unwrap();
    let needs = "avahi-daemon, avahi-utils, dbus-daemon and dbus-send";
    let sections = in_mount_namespace(SCRIPT, d, 3 * DEADLINE, needs).await;
    let stdout = sections.concat();
    assert_eq!(sections.len(), 3, "{stdout}");

    // The browse domain, found under the search domain (`b._dns-sd._udp.sd.internal`).
    assert!(sections[0].lines().any(|l| l.starts_with("+;") && l.ends_with(";service.sd.internal")), "{stdout}");

    // Every service type, every healthy instance, resolved: target, address, port, TXT.
    let all = resolved(&sections[1]);
    let want = |name: &str, service_type: &str, port: u16, txt: &[&str]| Resolved {
        name: name.into(),
        service_type: service_type.into(),
        domain: "service.sd.internal".into(),
        host: format!("{name}.instance.sd.internal"),
        address: "127.0.0.1".into(),
        port,
        txt: txt.iter().map(|t| t.to_string()).collect(),
    };
    assert_eq!(
        all,
        [
            want("db-1", "_db._tcp", 5432, &[]),
            want("web-1", "_web._tcp", ports["web-1"], &["txtvers=1", "path=/orders", "version=2"]),
            want("web-2", "_web._tcp", ports["web-2"], &[]),
        ],
        "{stdout}"
    );
    // Connect to what was resolved: each instance is who it was named.
    for r in all.iter().filter(|r| r.service_type == "_web._tcp") {
        let mut conn = TcpStream::connect((r.address.as_str(), r.port)).await.unwrap();
        let mut greeting = String::new();
        conn.read_to_string(&mut greeting).await.unwrap();
        assert_eq!(greeting, format!("hello from {}\n", r.name));
    }

    // A subtype: the instances with the tag.
    let v1: Vec<String> = resolved(&sections[2]).into_iter().map(|r| r.name).collect();
    assert_eq!(v1, ["web-1"], "{stdout}");

    // These are README's commands.
    let readme = docs_text();
    for line in SCRIPT.lines().filter_map(|l| l.strip_prefix("run ")) {
        let shown = line.replace(" -t -p", "").replace("_v1._sub._web._tcp", "_v1._sub._order-service._tcp");
        assert!(
            readme.contains(&format!("{shown} ")) || readme.contains(&format!("{shown}\n")),
            "README shows {shown:?}"
        );
    }
}
