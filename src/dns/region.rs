//! Which region a client is in: from an EDNS Client Subnet option when the query carries one
//! (RFC 7871), else from its source address, through the `[[regions.client]]` CIDR map; else the
//! server's own region. Names that do not name a region then prefer the client's.
//!
//! An answer to an ECS query says which addresses it holds for (its scope): a resolver caches it
//! for every client in that block. The block is the matching CIDR when every address in it gets
//! the same region; when a more specific CIDR of another region lies inside it, or when no CIDR
//! matched, the answer holds only for the subnet the client revealed.

use std::net::IpAddr;

use ipnet::IpNet;

/// The `[[regions.client]]` map and the server's own region.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    /// Most specific first, so the first match is the longest prefix.
    clients: Vec<Client>,
    server: Option<String>,
}

#[derive(Debug, Clone)]
struct Client {
    net: IpNet,
    region: String,
    /// No more specific network of another region lies inside this one.
    uniform: bool,
}

/// What the region lookup found for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRegion<'a> {
    pub region: Option<&'a str>,
    /// For an ECS query: the scope prefix length to echo when the answer depends on the region.
    pub ecs_scope: Option<u8>,
}

impl Regions {
    pub fn new(mut clients: Vec<(IpNet, String)>, server: Option<String>) -> Regions {
        clients.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        let lower = |r: &str| r.to_ascii_lowercase();
        let uniform = |net: &IpNet, region: &str| {
            !clients.iter().any(|(inner, r)| {
                inner.prefix_len() > net.prefix_len() && net.contains(&inner.network()) && lower(r) != lower(region)
            })
        };
        let clients = clients
            .iter()
            .map(|(net, region)| Client { net: *net, region: lower(region), uniform: uniform(net, region) })
            .collect();
        Regions { clients, server: server.as_deref().map(lower) }
    }

    /// Returns true if no region can ever be known, so answers never depend on the client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.server.is_none()
    }

    /// The region of a client at `src`, or of the subnet (address, source prefix) its resolver
    /// reported.
    pub fn of(&self, src: IpAddr, subnet: Option<(IpAddr, u8)>) -> ClientRegion<'_> {
        match subnet {
            Some((addr, source)) => {
                // Only a CIDR no longer than what the client revealed can be decided.
                let addr = addr.to_canonical();
                let hit = self.clients.iter().find(|c| c.net.prefix_len() <= source && c.net.contains(&addr));
                // With no networks at all, every address gets the same answer.
                let scope = match hit {
                    _ if self.clients.is_empty() => 0,
                    Some(c) if c.uniform => c.net.prefix_len(),
                    _ => source,
                };
                ClientRegion {
                    region: hit.map(|c| c.region.as_str()).or(self.server.as_deref()),
                    ecs_scope: Some(scope),
                }
            }
            None => {
                let src = src.to_canonical();
                let hit = self.clients.iter().find(|c| c.net.contains(&src)).map(|c| c.region.as_str());
                ClientRegion { region: hit.or(self.server.as_deref()), ecs_scope: None }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Regions {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        Regions::new(
            vec![(net("10.0.0.0/8"), "wide".into()), (net("10.1.0.0/16"), "US-East".into())],
            Some("home".into()),
        )
    }

    #[test]
    fn longest_prefix_wins_and_unknown_clients_get_the_server_region() {
        let r = regions();
        assert_eq!(r.of("10.1.2.3".parse().unwrap(), None).region, Some("us-east"));
        assert_eq!(r.of("10.9.2.3".parse().unwrap(), None).region, Some("wide"));
        assert_eq!(r.of("192.0.2.1".parse().unwrap(), None).region, Some("home"));
    }

    #[test]
    fn ecs_decides_over_the_source_and_reports_its_scope() {
        let r = regions();
        let ecs = |addr: &str, source| Some((addr.parse().unwrap(), source));
        let got = r.of("127.0.0.1".parse().unwrap(), ecs("10.1.7.0", 24));
        assert_eq!(got, ClientRegion { region: Some("us-east"), ecs_scope: Some(16) });
        // A /12 cannot tell 10.1.0.0/16 apart, only 10.0.0.0/8; and the /8 holds the /16 of
        // another region, so the answer holds for the /12 only, not the whole /8.
        let got = r.of("127.0.0.1".parse().unwrap(), ecs("10.0.0.0", 12));
        assert_eq!(got, ClientRegion { region: Some("wide"), ecs_scope: Some(12) });
        let got = r.of("127.0.0.1".parse().unwrap(), ecs("10.9.0.0", 24));
        assert_eq!(got, ClientRegion { region: Some("wide"), ecs_scope: Some(24) });
        // No network matched: the answer holds for the subnet the client revealed, not for
        // everyone (a scope of 0 would let a resolver hand it to clients of other regions).
        let got = r.of("10.1.0.1".parse().unwrap(), ecs("192.0.2.0", 24));
        assert_eq!(got, ClientRegion { region: Some("home"), ecs_scope: Some(24) });
        // No networks at all: the same answer for every address.
        let server_only = Regions::new(vec![], Some("home".into()));
        assert_eq!(server_only.of("127.0.0.1".parse().unwrap(), ecs("10.1.7.0", 24)).ecs_scope, Some(0));
        // An IPv4-mapped source is its IPv4 address.
        assert_eq!(r.of("::ffff:10.1.2.3".parse().unwrap(), None).region, Some("us-east"));
    }
}
