//! Which region a client is in: from an EDNS Client Subnet option when the query carries one
//! (RFC 7871), else from its source address, through the `[[regions.client]]` CIDR map; else the
//! server's own region. Names that do not name a region then prefer the client's.

use std::net::IpAddr;

use hickory_proto::rr::rdata::opt::ClientSubnet;
use ipnet::IpNet;

/// The `[[regions.client]]` map and the server's own region.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    /// Most specific first, so the first match is the longest prefix.
    clients: Vec<(IpNet, String)>,
    server: Option<String>,
}

/// What the region lookup found for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRegion<'a> {
    pub region: Option<&'a str>,
    /// For an ECS query: the scope prefix length to echo (the matching CIDR's, 0 if none).
    pub ecs_scope: Option<u8>,
}

impl Regions {
    pub fn new(mut clients: Vec<(IpNet, String)>, server: Option<String>) -> Regions {
        clients.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        let lower = |r: String| r.to_ascii_lowercase();
        Regions { clients: clients.into_iter().map(|(n, r)| (n, lower(r))).collect(), server: server.map(lower) }
    }

    /// Returns true if no region can ever be known, so answers never depend on the client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.server.is_none()
    }

    /// The region of a client at `src`, or of the subnet its resolver reported.
    pub fn of(&self, src: IpAddr, ecs: Option<&ClientSubnet>) -> ClientRegion<'_> {
        match ecs {
            Some(subnet) => {
                // Only a CIDR no longer than what the client revealed can be decided.
                let hit = self
                    .clients
                    .iter()
                    .find(|(net, _)| net.prefix_len() <= subnet.source_prefix() && net.contains(&subnet.addr()));
                ClientRegion {
                    region: hit.map(|(_, r)| r.as_str()).or(self.server.as_deref()),
                    ecs_scope: Some(hit.map_or(0, |(net, _)| net.prefix_len())),
                }
            }
            None => {
                let hit = self.clients.iter().find(|(net, _)| net.contains(&src)).map(|(_, r)| r.as_str());
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
        let ecs = ClientSubnet::new("10.1.7.0".parse().unwrap(), 24, 0);
        let got = r.of("127.0.0.1".parse().unwrap(), Some(&ecs));
        assert_eq!(got, ClientRegion { region: Some("us-east"), ecs_scope: Some(16) });
        // A /12 cannot tell 10.1.0.0/16 apart, only 10.0.0.0/8.
        let ecs = ClientSubnet::new("10.0.0.0".parse().unwrap(), 12, 0);
        assert_eq!(r.of("127.0.0.1".parse().unwrap(), Some(&ecs)).region, Some("wide"));
        let ecs = ClientSubnet::new("192.0.2.0".parse().unwrap(), 24, 0);
        assert_eq!(
            r.of("10.1.0.1".parse().unwrap(), Some(&ecs)),
            ClientRegion { region: Some("home"), ecs_scope: Some(0) }
        );
    }
}
