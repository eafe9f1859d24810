//! Response-rate limiting for UDP (`[dns] rrl`, off by default), so that signpost cannot be
//! turned into an amplifier against a spoofed source. Every UDP query is checked before either
//! path answers it, per client network (IPv4 /24, IPv6 /56, as BIND's RRL groups them): within
//! one `window`, `responses_per_second × window` answers go out; past that, every `slip`-th
//! query gets a bare truncated answer (TC=1: a real client retries over TCP, which a spoofer
//! cannot) and the others get nothing. Clients in `exempt` (loopback by default) are never
//! limited.
//!
//! The check runs on the DNS threads for every query, so it takes no lock: networks are counted
//! in a fixed table of atomic slots, each holding the window it counts and the queries seen in
//! it, updated with compare-and-swap. A fixed table is bounded by construction under a flood of
//! spoofed networks; two networks hashed to one slot (keyed at random per process, so nobody can
//! aim for a collision) share a budget, as BIND's hash buckets do.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Networks tracked at once: the table's slots.
const MAX_NETWORKS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrlConfig {
    pub responses_per_second: u32,
    pub window: Duration,
    /// Every `slip`-th limited query is answered with TC=1; 0 drops them all.
    pub slip: u32,
    pub exempt: Vec<IpNet>,
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Answer with TC=1 and nothing else.
    Slip,
    Drop,
}

pub struct Rrl {
    config: RrlConfig,
    /// Answers allowed per network per window.
    allowed: u64,
    /// Windows are counted from here: window k is [epoch + k·window, epoch + (k+1)·window).
    epoch: Instant,
    hasher: std::collections::hash_map::RandomState,
    /// Per slot: the window it counts (high 32 bits) and the queries seen in it (low 32 bits).
    slots: Box<[AtomicU64]>,
}

impl Rrl {
    pub fn new(config: RrlConfig) -> Rrl {
        let allowed = (u64::from(config.responses_per_second) * config.window.as_millis() as u64 / 1000).max(1);
        let slots = (0..MAX_NETWORKS).map(|_| AtomicU64::new(0)).collect();
        Rrl { config, allowed, epoch: Instant::now(), hasher: Default::default(), slots }
    }

    /// Decides about one query from `client`, counting it.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        if self.config.exempt.iter().any(|n| n.contains(&client)) {
            return Verdict::Answer;
        }
        let slot = &self.slots[self.hasher.hash_one(network(client)) as usize % MAX_NETWORKS];
        let window = self.window(now);
        let mut current = slot.load(Ordering::Relaxed);
        let seen = loop {
            let seen =
                if current >> 32 == window { (current & 0xFFFF_FFFF).saturating_add(1).min(0xFFFF_FFFF) } else { 1 };
            match slot.compare_exchange_weak(current, window << 32 | seen, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break seen,
                Err(actual) => current = actual,
            }
        };
        if seen <= self.allowed {
            return Verdict::Answer;
        }
        let limited = seen - self.allowed;
        let slip = u64::from(self.config.slip);
        if slip > 0 && limited.is_multiple_of(slip) { Verdict::Slip } else { Verdict::Drop }
    }

    /// The number of the window `now` falls in, as a slot keeps it (32 bits). Numbers start at
    /// 1, so that a slot never used (0) counts no window.
    fn window(&self, now: Instant) -> u64 {
        let k = now.saturating_duration_since(self.epoch).as_nanos() / self.config.window.as_nanos().max(1);
        (k as u64 + 1) & 0xFFFF_FFFF
    }

    /// How many networks are counted in the window open at `now`.
    #[cfg(test)]
    fn tracked(&self, now: Instant) -> usize {
        let window = self.window(now);
        self.slots.iter().filter(|s| s.load(Ordering::Relaxed) >> 32 == window).count()
    }
}

/// The network a client is counted in.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xFFFF_FF00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 72) - 1)).into()),
    }
}

/// Writes a bare truncated answer to `query` into `out`: its header and question, QR and TC
/// set, no records. Returns false when the query has no header to answer to or is a response.
pub fn truncated(query: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return false;
    }
    // The question, if it is one uncompressed name followed by type and class.
    let mut pos = 12;
    let question_end = loop {
        let Some(&len) = query.get(pos) else { break None };
        if len & 0xC0 != 0 || pos - 12 + 1 + usize::from(len) > 255 {
            break None;
        }
        pos += 1 + usize::from(len);
        if len == 0 {
            break Some(pos + 4).filter(|&end| end <= query.len());
        }
    };
    let has_question = u16::from_be_bytes([query[4], query[5]]) >= 1 && question_end.is_some();
    out.extend_from_slice(&query[..question_end.filter(|_| has_question).unwrap_or(12)]);
    // QR, the query's opcode and RD, TC; rcode NOERROR; one question or none.
    out[2] = 0x80 | (query[2] & 0x79) | 0x02;
    out[3] = 0;
    out[4..6].copy_from_slice(&u16::from(has_question).to_be_bytes());
    out[6..12].fill(0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rps: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            responses_per_second: rps,
            window: Duration::from_secs(1),
            slip,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
        })
    }

    #[test]
    fn past_the_rate_every_second_query_slips_and_the_rest_are_dropped() {
        let r = rrl(3, 2);
        let now = Instant::now();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let got: Vec<Verdict> = (0..7).map(|_| r.check(client, now)).collect();
        use Verdict::*;
        assert_eq!(got, [Answer, Answer, Answer, Drop, Slip, Drop, Slip]);
        // The same /24 shares the budget; another network has its own; loopback is exempt.
        assert_eq!(r.check("192.0.2.200".parse().unwrap(), now), Drop);
        assert_eq!(r.check("198.51.100.1".parse().unwrap(), now), Answer);
        assert!((0..100).all(|_| r.check("127.0.0.1".parse().unwrap(), now) == Answer));
        // A new window starts afresh.
        assert_eq!(r.check(client, now + Duration::from_secs(1)), Answer);
    }

    #[test]
    fn slip_zero_drops_everything_past_the_rate() {
        let r = rrl(1, 0);
        let now = Instant::now();
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(r.check(client, now), Verdict::Answer);
        assert!((0..10).all(|_| r.check(client, now) == Verdict::Drop));
        // The same /56.
        assert_eq!(r.check("2001:db8:0:ff::9".parse().unwrap(), now), Verdict::Drop);
    }

    #[test]
    fn the_table_stays_bounded_under_spoofed_sources() {
        let r = rrl(1, 2);
        let now = Instant::now();
        for i in 0..(MAX_NETWORKS as u32 + 10) {
            r.check(IpAddr::V4((i << 8).into()), now);
        }
        assert!(r.tracked(now) <= MAX_NETWORKS);
    }

    #[test]
    fn a_truncated_answer_keeps_the_question() {
        let mut q = vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        assert!(truncated(&q, &mut out));
        let m = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.message_type, hickory_proto::op::MessageType::Response);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.id, 0xABCD);
        assert_eq!(m.queries.len(), 1);
        assert!(m.answers.is_empty() && m.additionals.is_empty());
        // A response or a bare fragment gets nothing.
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert!(!truncated(&resp, &mut out));
        assert!(!truncated(&q[..5], &mut out));
    }
}
