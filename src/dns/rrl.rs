//! Response-rate limiting for UDP (`[dns] rrl`, off by default), so that signpost cannot be
//! turned into an amplifier against a spoofed source. Every UDP query is checked before either
//! path answers it, per client network (IPv4 /24, IPv6 /56, as BIND's RRL groups them): within
//! one `window`, `responses_per_second × window` answers go out; past that, every `slip`-th
//! query gets a bare truncated answer (TC=1: a real client retries over TCP, which a spoofer
//! cannot) and the others get nothing. Clients in `exempt` (loopback by default) are never
//! limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Networks tracked at once; beyond this, windows that ended are forgotten, and if that is not
/// enough, everything is (a flood from spoofed networks must not grow the table without bound).
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
    networks: Mutex<HashMap<IpAddr, Window>>,
}

struct Window {
    start: Instant,
    answered: u64,
    limited: u64,
}

impl Rrl {
    pub fn new(config: RrlConfig) -> Rrl {
        let allowed = (u64::from(config.responses_per_second) * config.window.as_millis() as u64 / 1000).max(1);
        Rrl { config, allowed, networks: Mutex::new(HashMap::new()) }
    }

    /// Decides about one query from `client`, counting it.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        if self.config.exempt.iter().any(|n| n.contains(&client)) {
            return Verdict::Answer;
        }
        let key = network(client);
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        if networks.len() >= MAX_NETWORKS && !networks.contains_key(&key) {
            networks.retain(|_, w| now.duration_since(w.start) < self.config.window);
            if networks.len() >= MAX_NETWORKS {
                networks.clear();
            }
        }
        let w = networks.entry(key).or_insert(Window { start: now, answered: 0, limited: 0 });
        if now.duration_since(w.start) >= self.config.window {
            *w = Window { start: now, answered: 0, limited: 0 };
        }
        if w.answered < self.allowed {
            w.answered += 1;
            return Verdict::Answer;
        }
        w.limited += 1;
        let slip = u64::from(self.config.slip);
        if slip > 0 && w.limited.is_multiple_of(slip) { Verdict::Slip } else { Verdict::Drop }
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
        assert!(r.networks.lock().unwrap().len() <= MAX_NETWORKS);
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
