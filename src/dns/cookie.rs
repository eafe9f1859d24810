//! DNS Cookies (RFC 7873) with the interoperable server cookie of RFC 9018: version 1, three
//! reserved bytes, a timestamp, and SipHash-2-4 over the client cookie, those eight bytes and
//! the client's address, keyed by the server secret.
//!
//! The secret of each hour is derived from one seed (SipHash-128 of the hour's number, keyed by
//! the seed). Every replica that shares the seed (cluster mode keeps it in etcd; one server keeps
//! it in its data directory) makes and accepts the same cookies, a secret changes every hour
//! without anyone rotating it, and a cookie is checked with the secret of the hour its own
//! timestamp names: whatever the rotation, a cookie stays good for the hour RFC 9018 §4.3 gives
//! it (and five minutes of clock skew the other way).

use std::cell::Cell;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher128};
use std::hash::Hasher;

/// How long a server secret serves for making new cookies.
const SECRET_LIFETIME: u32 = 3600;
/// How old a server cookie may be, and how far in the future its timestamp may lie.
const MAX_AGE: u32 = 3600;
const MAX_SKEW: u32 = 300;

/// Makes and checks server cookies.
#[derive(Clone)]
pub struct Cookies {
    seed: [u8; 16],
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { seed: <secret> }")
    }
}

/// What a query's server cookie turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// None sent: the client's first query to us.
    ClientOnly,
    /// Ours, and fresh.
    Valid,
    /// Not ours, too old, or from the future.
    Invalid,
}

impl Cookies {
    pub fn new(seed: [u8; 16]) -> Cookies {
        Cookies { seed }
    }

    /// The secret of the hour `timestamp` falls in. Each thread keeps the last one it derived:
    /// nearly every cookie made or checked is of the current hour.
    fn secret(&self, timestamp: u32) -> [u8; 16] {
        thread_local!(static LAST: Cell<([u8; 16], u32, [u8; 16])> = const { Cell::new(([0; 16], u32::MAX, [0; 16])) });
        let epoch = timestamp / SECRET_LIFETIME;
        LAST.with(|last| {
            let (seed, at, secret) = last.get();
            if at == epoch && seed == self.seed {
                return secret;
            }
            let mut h = SipHasher128::new_with_key(&self.seed);
            h.write(&epoch.to_be_bytes());
            let hash = h.finish128();
            let mut secret = [0u8; 16];
            secret[..8].copy_from_slice(&hash.h1.to_le_bytes());
            secret[8..].copy_from_slice(&hash.h2.to_le_bytes());
            last.set((self.seed, epoch, secret));
            secret
        })
    }

    /// Judges the server cookie a client sent with `client`, from `ip`, at `now` (seconds since
    /// the epoch, as RFC 9018 counts them), and makes the fresh one to answer with.
    pub fn check(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> (Verdict, [u8; 16]) {
        let verdict = if server.is_empty() {
            Verdict::ClientOnly
        } else if self.is_ours(client, server, ip, now) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        (verdict, server_cookie(&self.secret(now), client, ip, now))
    }

    fn is_ours(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> bool {
        let Ok(server) = <&[u8; 16]>::try_from(server) else { return false };
        if server[..4] != [1, 0, 0, 0] {
            return false;
        }
        let timestamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // Serial number arithmetic (RFC 1982), as RFC 9018 §4.3 asks.
        let age = now.wrapping_sub(timestamp);
        let fresh = age <= MAX_AGE || timestamp.wrapping_sub(now) <= MAX_SKEW;
        fresh && server_cookie(&self.secret(timestamp), client, ip, timestamp) == *server
    }
}

/// A seed no one else knows, for a server whose cookies no other server need accept.
pub fn random_seed() -> [u8; 16] {
    use std::hash::{BuildHasher, RandomState};
    let (a, b) = (RandomState::new().hash_one(1u8), RandomState::new().hash_one(2u8));
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&a.to_le_bytes());
    seed[8..].copy_from_slice(&b.to_le_bytes());
    seed
}

/// Seconds since the Unix epoch, as RFC 9018's timestamps count them.
pub(crate) fn unix_seconds() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// RFC 9018 §4.2's server cookie for `client` at `ip`, made at `timestamp` with `secret`.
fn server_cookie(secret: &[u8; 16], client: &[u8; 8], ip: IpAddr, timestamp: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = 1;
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(&out[..8]);
    match ip.to_canonical() {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    out[8..].copy_from_slice(&h.finish().to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }

    /// RFC 9018 Appendix A: the published server cookies, made again.
    #[test]
    fn the_rfc_9018_test_vectors() {
        let vectors = [
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559731985,
                "010000005cf79f111f8130c3eee29480",
            ),
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559734385,
                "010000005cf7a871d4a564a1442aca77",
            ),
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "fc93fc62807ddb86",
                "203.0.113.203",
                1559734700,
                "010000005cf7a9acf73a7810aca2381e",
            ),
            (
                "445536bcd2513298075a5d379663c962",
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1559741961,
                "010000005cf7c609a6bb79d16625507a",
            ),
            // A.4's request: a cookie the previous secret made, still good.
            (
                "dd3bdf9344b678b185a6f5cb60fca715",
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1559741817,
                "010000005cf7c57926556bd0934c72f8",
            ),
        ];
        for (secret, client, ip, at, want) in vectors {
            let got = server_cookie(&hex(secret), &hex(client), ip.parse().unwrap(), at);
            assert_eq!(got, hex::<16>(want), "{client} at {at}");
        }
    }

    #[test]
    fn a_cookie_of_ours_is_good_for_an_hour_across_the_secrets_rotation() {
        let (cookies, ip) = (Cookies::new([7; 16]), "192.0.2.1".parse().unwrap());
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        // Made one second before the secret changes.
        let made = 100 * SECRET_LIFETIME - 1;
        let (verdict, server) = cookies.check(&client, &[], ip, made);
        assert_eq!(verdict, Verdict::ClientOnly);
        for (later, want) in
            [(0, Verdict::Valid), (1, Verdict::Valid), (MAX_AGE, Verdict::Valid), (MAX_AGE + 1, Verdict::Invalid)]
        {
            assert_eq!(cookies.check(&client, &server, ip, made + later).0, want, "{later} s later");
        }
        // From the future within the skew allowed, and beyond it.
        assert_eq!(cookies.check(&client, &server, ip, made - MAX_SKEW).0, Verdict::Valid);
        assert_eq!(cookies.check(&client, &server, ip, made - MAX_SKEW - 1).0, Verdict::Invalid);
        // Another client, address, seed, or a changed byte: not ours.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(cookies.check(&client, &server, other, made).0, Verdict::Invalid);
        assert_eq!(cookies.check(&[9; 8], &server, ip, made).0, Verdict::Invalid);
        assert_eq!(Cookies::new([8; 16]).check(&client, &server, ip, made).0, Verdict::Invalid);
        let mut bent = server;
        bent[15] ^= 1;
        assert_eq!(cookies.check(&client, &bent, ip, made).0, Verdict::Invalid);
        assert_eq!(cookies.check(&client, &server[..8], ip, made).0, Verdict::Invalid, "a short one");
        // Replicas sharing the seed accept each other's cookies.
        assert_eq!(Cookies::new([7; 16]).check(&client, &server, ip, made + 5).0, Verdict::Valid);
        // An IPv4-mapped source is its IPv4 address.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(cookies.check(&client, &server, mapped, made).0, Verdict::Valid);
    }
}
