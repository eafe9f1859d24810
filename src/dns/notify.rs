//! NOTIFY (RFC 1996): tells the secondaries in `[dns] notify` that the zone changed, so they
//! transfer it at once instead of at the SOA's refresh interval. Sent at start (a secondary may
//! hold an older copy) and after every registry change, at most one round per second: a burst
//! of registrations costs each secondary one transfer, not one per write. Each NOTIFY is sent
//! over UDP and repeated until the secondary acknowledges it, a few times at most.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::answer::Zone;
use crate::metrics::Notified;
use crate::registry::Registry;

/// The least time between two rounds of NOTIFY.
const ROUND_GAP: Duration = Duration::from_secs(1);
/// How long to wait for a secondary's acknowledgement before sending again, and how often.
const ACK_WAIT: Duration = Duration::from_millis(500);
const ATTEMPTS: usize = 3;

/// Notifies the secondaries `targets` names of every change of the zone until `token` is
/// cancelled; each on its own, so that one secondary down does not hold up the others. When
/// `targets` changes (a configuration reload), the new ones are notified at once.
pub async fn run(
    registry: Registry,
    zone: Zone,
    mut targets: watch::Receiver<Vec<SocketAddr>>,
    token: CancellationToken,
) {
    loop {
        let mut all = tokio::task::JoinSet::new();
        for target in targets.borrow_and_update().clone() {
            all.spawn(follow(registry.clone(), zone.clone(), target, token.clone()));
        }
        tokio::select! {
            _ = token.cancelled() => return,
            changed = targets.changed() => if changed.is_err() { return },
        }
        all.abort_all();
    }
}

async fn follow(registry: Registry, zone: Zone, target: SocketAddr, token: CancellationToken) {
    let mut changes = registry.subscribe();
    changes.mark_unchanged();
    loop {
        let started = tokio::time::Instant::now();
        let soa = zone.soa(registry.snapshot().version, zone.ttl);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = notify(target, zone.origin.clone(), soa) => {}
            // Still unacknowledged when the zone changes again: announce the newer serial.
            changed = changes.changed() => {
                if changed.is_err() { return }
                continue;
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        // A change soon after the last NOTIFY waits for the rest of the gap, and whatever else
        // changes meanwhile goes with it.
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep_until(started + ROUND_GAP) => {}
        }
    }
}

/// Sends one NOTIFY to `target` until it is acknowledged; returns whether it was.
async fn notify(target: SocketAddr, origin: Name, soa: Record) -> bool {
    let local: SocketAddr =
        if target.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => {
            warn!(%target, error = %e, "cannot send NOTIFY");
            return false;
        }
    };
    let id: u16 = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(origin, RecordType::SOA));
    // The new SOA, as a hint (RFC 1996 §3.7).
    message.add_answer(soa);
    let Ok(bytes) = message.to_vec() else { return false };
    let mut buf = [0u8; 512];
    for attempt in 1..=ATTEMPTS {
        if let Err(e) = socket.send_to(&bytes, target).await {
            debug!(%target, error = %e, attempt, "NOTIFY not sent");
        }
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            // An acknowledgement: a response from the target with our id.
            if from == target && n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
                debug!(%target, "NOTIFY acknowledged");
                crate::metrics::notified(Notified::Acknowledged);
                return true;
            }
        }
    }
    warn!(%target, "a secondary did not acknowledge NOTIFY; it picks the change up at its next refresh");
    crate::metrics::notified(Notified::Unanswered);
    false
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) as u16
}
