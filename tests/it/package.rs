//! The Debian package, installed on this machine the way an operator installs it: built by
//! scripts/package.sh, checked by lintian, `dpkg -i` (the user, the state directory, the
//! capability, the conffiles), the installed unit verified and scored by systemd-analyze, the
//! installed binary run as the unit runs it (as user `signpost`, on port 53 of an address of
//! the test's own, with a real NOTIFY_SOCKET), the man pages rendered and the completions loaded,
//! a reinstall keeping a changed configuration, then `dpkg -r` and `dpkg -P`, each checked for
//! what stays and what goes. Needs root, as dpkg does (CI runs as root).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use hickory_proto::rr::RecordType;

use crate::support::*;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "signpost"]).output();
    }
}

#[tokio::test]
async fn the_package_installs_runs_as_its_unit_and_goes_away_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let built = run(Command::new(root.join("scripts/package.sh"))
        .args(["--debug", out.path().to_str().unwrap()])
        .env("DEB_COMPRESSION", "gzip"));
    let deb = String::from_utf8(built.stdout).unwrap().trim().lines().last().unwrap().to_string();

    // lintian: no errors (nor warnings).
    let lint = Command::new("lintian").args(["--tag-display-limit", "0", &deb]).output().expect("lintian installs");
    let findings: Vec<String> =
        text(&lint).lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).map(str::to_string).collect();
    assert!(findings.is_empty(), "lintian: {findings:#?}");

    let _purge = Installed;
    run(Command::new("dpkg").args(["--force-confold", "-i", &deb]));
    let passwd = text(&run(Command::new("getent").args(["passwd", "signpost"])));
    assert!(passwd.contains("/var/lib/signpost"), "{passwd}");
    let state = std::fs::metadata("/var/lib/signpost").unwrap();
    assert_eq!(state.permissions().mode() & 0o777, 0o750);
    let caps = text(&run(Command::new("getcap").arg("/usr/bin/signpost")));
    assert!(caps.contains("cap_net_bind_service"), "{caps}");
    for file in [
        "/etc/signpost/signpost.toml",
        "/etc/signpost/zones/order-service.toml",
        "/lib/systemd/system/signpost.service",
        "/usr/share/man/man1/signpost.1.gz",
        "/usr/share/man/man1/signpost-serve.1.gz",
        "/usr/share/man/man5/signpost.toml.5.gz",
        "/usr/share/bash-completion/completions/signpost",
        "/usr/share/zsh/vendor-completions/_signpost",
        "/usr/share/fish/vendor_completions.d/signpost.fish",
    ] {
        assert!(Path::new(file).exists(), "{file}");
    }

    // The unit as installed: verified, and its sandbox scored.
    let verify = run(Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/signpost.service"]));
    assert!(text(&verify).trim().is_empty(), "systemd-analyze verify: {}", text(&verify));
    let security = text(&run(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        "/lib/systemd/system/signpost.service",
    ])));
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for signpost.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{security}"));
    assert!(exposure <= 2.0, "exposure {exposure}");

    // The man pages render without warnings; the bash completions load.
    for page in
        std::fs::read_dir("/usr/share/man/man1").unwrap().chain(std::fs::read_dir("/usr/share/man/man5").unwrap())
    {
        let page = page.unwrap().path();
        if !page.file_name().unwrap().to_string_lossy().starts_with("signpost") {
            continue;
        }
        let rendered = run(Command::new("man").args(["--warnings", "-l"]).arg(&page).env("MANWIDTH", "80"));
        assert!(String::from_utf8_lossy(&rendered.stderr).trim().is_empty(), "{}: {}", page.display(), text(&rendered));
    }
    let complete = run(Command::new("bash")
        .args(["-c", "source /usr/share/bash-completion/completions/signpost && complete -p signpost"]));
    assert!(text(&complete).contains("signpost"), "{}", text(&complete));

    // The installed binary as the unit starts it, as user `signpost`: port 53 needs the
    // capability the package set; READY=1 comes once it answers the example zone.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let dns: std::net::SocketAddr = "127.0.0.153:53".parse().unwrap();
    // setpriv execs the server itself (runuser would stand between it and the signal).
    let mut server = Command::new("setpriv")
        .args(["--reuid", "signpost", "--regid", "signpost", "--init-groups", "--"])
        .args(["/usr/bin/signpost", "serve", "--config", "/etc/signpost/signpost.toml"])
        .args(["--dns-addr", &dns.to_string(), "--http-addr", "127.0.0.1:0"])
        .env("SIGNPOST_DATA_DIR", "/var/lib/signpost")
        .env("SIGNPOST_ZONES", "/etc/signpost/zones")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let n = match notify.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = server.kill();
                let log = server.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).to_string());
                panic!("no READY=1: {e}; log: {log:?}")
            }
        };
        if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
            break;
        }
        assert!(started.elapsed() < DEADLINE);
    }
    let m = query(dns, Transport::Udp, &Ask::new("order-service.service.local.", RecordType::A)).await;
    assert_eq!(addresses(&m).len(), 3);
    assert!(Path::new("/var/lib/signpost/cookie-seed").exists(), "the state directory holds the store");
    run(Command::new("kill").args(["-TERM", &server.id().to_string()]));
    assert!(server.wait().unwrap().success());

    // A changed configuration survives a reinstall (an upgrade's path).
    let changed = std::fs::read_to_string("/etc/signpost/signpost.toml").unwrap() + "\n[dns]\nnsid = \"kept\"\n";
    std::fs::write("/etc/signpost/signpost.toml", &changed).unwrap();
    run(Command::new("dpkg").args(["--force-confold", "-i", &deb]));
    assert_eq!(std::fs::read_to_string("/etc/signpost/signpost.toml").unwrap(), changed);

    // Removed: the program goes, the configuration and the data stay.
    run(Command::new("dpkg").args(["-r", "signpost"]));
    assert!(!Path::new("/usr/bin/signpost").exists());
    assert!(Path::new("/etc/signpost/signpost.toml").exists());
    assert!(Path::new("/var/lib/signpost/cookie-seed").exists());
    // Purged: they go too.
    run(Command::new("dpkg").args(["-P", "signpost"]));
    assert!(!Path::new("/etc/signpost").exists());
    assert!(!Path::new("/var/lib/signpost").exists());
}
