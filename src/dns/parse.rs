//! Query names → what they ask about. The DNS name grammar of DESIGN.md lives here and only here:
//!
//! ```text
//! D                                   apex (SOA, NS)
//! ns.D                                this server
//! <name>.service[.<region>].D         a service
//! <tag>.<name>.service[.<region>].D   a service's instances with a tag
//! _<name>._<tag>.service[.<region>].D RFC 2782 (`_tcp` = any tag)
//! <id>.instance.D                     one instance
//! ```
//!
//! and DNS-based Service Discovery (RFC 6763), whose browse domain is `service.D` (or
//! `service.<region>.D` for one region's instances), so that a service type is the RFC 2782 name:
//!
//! ```text
//! _services._dns-sd._udp.service.D              the service types (PTR)
//! _<name>._tcp.service[.<region>].D             a service type: its instances (PTR)
//! _<tag>._sub._<name>._tcp.service[.<region>].D a subtype: the instances with a tag (PTR)
//! <id>._<name>._tcp.service[.<region>].D        one instance (SRV, TXT)
//! b|db|lb._dns-sd._udp[.service].D              the browse domain (PTR `service.D`)
//! ```
//! Names above existing ones (`service.D`, `_tcp.service.D`, `<region>.D`, `_udp.D`, ...) are
//! empty non-terminals: they exist but hold no records (RFC 8020).
//!
//! With `[dns] consul_names`, Consul's datacenter qualifiers read as these names
//! (`ConsulNames`): `service.<dc>.dc.D` is `service.<dc>.D`, and this server's datacenter, when it
//! has no region, is no qualifier at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{LowerName, Name, RecordType};
use ipnet::IpNet;

use crate::registry::ServiceView;

/// What a name inside the domain refers to. Borrowed labels are lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Apex,
    Nameserver,
    Service {
        service: &'a str,
        tag: Option<&'a str>,
        region: Option<&'a str>,
        spelling: Spelling,
    },
    Instance {
        id: &'a str,
    },
    /// `<node>.node`: a node registered through `PUT /v1/catalog/register`, at its address.
    Node {
        name: &'a str,
    },
    /// `<id>._<name>._tcp.service[.<region>]`: a DNS-SD service instance.
    ServiceInstance {
        id: &'a str,
        service: &'a str,
        region: Option<&'a str>,
    },
    /// `_services._dns-sd._udp.service`: every service type (RFC 6763 §9).
    ServiceTypes,
    /// `b`, `db` or `lb._dns-sd._udp` under `D` or `service.D`: where to browse (RFC 6763 §11).
    BrowseDomains,
    /// A name that exists only because names below it may: answered NODATA.
    EmptyNonTerminal,
    /// An empty non-terminal that exists only if some instance carries this region or tag.
    RegionNonTerminal(&'a str),
    TagNonTerminal(&'a str),
    /// Inside the domain but matching no form: NXDOMAIN.
    Unknown,
}

/// How a service's name is spelt, which decides what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// `[<tag>.]<name>.service`: A, AAAA, SRV, TXT.
    Plain,
    /// RFC 2782's `_<name>._<tag>.service`: the same records, SRV rotating on its own.
    Rfc2782,
    /// `_<name>._tcp.service`: RFC 2782's name for any tag, and the DNS-SD service type, whose
    /// PTR records name its instances.
    ServiceType,
    /// `_<tag>._sub._<name>._tcp.service`: a DNS-SD subtype, PTR only (RFC 6763 §7.1).
    Subtype,
    /// `_sub._<name>._tcp.service`: the empty non-terminal above the subtypes; it exists while
    /// the service has one (`tag` is then `None`).
    Subtypes,
}

impl Spelling {
    /// Returns true if the name's PTR records browse instances (RFC 6763 §4.1).
    pub fn browses(self) -> bool {
        matches!(self, Spelling::ServiceType | Spelling::Subtype)
    }

    /// Returns true if a name so spelt holds records of `qtype` (which ones may then depend on
    /// the client's region); ANY aside.
    pub fn holds(self, qtype: RecordType) -> bool {
        use RecordType::{A, AAAA, PTR, SRV, TXT};
        match self {
            Spelling::Plain | Spelling::Rfc2782 => matches!(qtype, A | AAAA | SRV | TXT),
            Spelling::ServiceType => matches!(qtype, A | AAAA | SRV | TXT | PTR),
            Spelling::Subtype => qtype == PTR,
            Spelling::Subtypes => false,
        }
    }
}

/// The first labels of the browse-domain names (RFC 6763 §11): browse, default browse, legacy
/// browse. The registration domains (`r`, `dr`) are not served: nothing registers through DNS.
const BROWSE: [&str; 3] = ["b", "db", "lb"];

/// `[dns] consul_names`: how Consul's datacenter qualifiers read, for clients moving from Consul
/// (`web.service.dc1.consul`, `web.service.dc1.dc.consul`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulNames {
    /// The datacenter this server reports (`/v1/agent/self`) when it has no region, lowercase:
    /// a name qualified with it means what the unqualified name means, the whole catalog, as a
    /// Consul agent answers for its own datacenter. A server with a region reports that region,
    /// whose qualifier already means its instances.
    pub local: Option<String>,
}

/// The most labels below the domain a name of ours has (a regional subtype with Consul's
/// `.<dc>.dc`); any longer name is unknown.
pub(crate) const MAX_LABELS: usize = 8;

/// How many of `labels` (below the domain) name what the name means once Consul's datacenter
/// qualifier, right after `service` or `node`, is read: `<dc>.dc` is `<dc>`, and the local
/// datacenter is dropped. All of them when there is no such qualifier.
pub fn consul_labels(labels: &[&str], consul: &ConsulNames) -> usize {
    let after_kind = |n: usize| n >= 2 && matches!(labels[n - 2], "service" | "node");
    let mut n = labels.len();
    if n >= 3 && labels[n - 1] == "dc" && after_kind(n - 1) {
        n -= 1;
    }
    if after_kind(n) && consul.local.as_deref() == Some(labels[n - 1]) {
        n -= 1;
    }
    n
}

/// Classifies `name` relative to `domain`; `None` if it is outside the domain. Both are lowercase
/// (that is what `LowerName` guarantees), so matching is case-insensitive.
pub fn classify<'a>(name: &'a LowerName, domain: &LowerName, consul: Option<&ConsulNames>) -> Option<Target<'a>> {
    if !domain.zone_of(name) {
        return None;
    }
    let relative = usize::from(name.num_labels() - domain.num_labels());
    let mut labels = [""; MAX_LABELS];
    if relative > labels.len() {
        return Some(Target::Unknown);
    }
    for (slot, label) in labels.iter_mut().zip(name.iter().take(relative)) {
        match std::str::from_utf8(label) {
            Ok(s) => *slot = s,
            Err(_) => return Some(Target::Unknown),
        }
    }
    let kept = consul.map_or(relative, |c| consul_labels(&labels[..relative], c));
    Some(classify_labels(&labels[..kept]))
}

pub(crate) fn classify_labels<'a>(labels: &[&'a str]) -> Target<'a> {
    use Target::*;
    match *labels {
        [] => Apex,
        ["ns"] => Nameserver,
        ["service"] | ["instance"] | ["node"] | ["_udp"] | ["_dns-sd", "_udp"] => EmptyNonTerminal,
        [b, "_dns-sd", "_udp"] | [b, "_dns-sd", "_udp", "service"] if BROWSE.contains(&b) => BrowseDomains,
        ["_udp", "service"] | ["_dns-sd", "_udp", "service"] => EmptyNonTerminal,
        ["_services", "_dns-sd", "_udp", "service"] => ServiceTypes,
        [id, "instance"] => Instance { id },
        [name, "node"] => Node { name },
        [region] => RegionNonTerminal(region),
        ["service", region] => RegionNonTerminal(region),
        [first, "service"] => service_or_tag_tree(first, None),
        ["_tcp", "service", region] => RegionNonTerminal(region),
        [first, "service", region] => service_or_tag_tree(first, Some(region)),
        [left, right, "service"] => service_name(left, right, None),
        [left, right, "service", region] => service_name(left, right, Some(region)),
        [first, name, "_tcp", "service"] => dns_sd_name(first, name, None),
        [first, name, "_tcp", "service", region] => dns_sd_name(first, name, Some(region)),
        [tag, "_sub", name, "_tcp", "service"] => subtype(tag, name, None),
        [tag, "_sub", name, "_tcp", "service", region] => subtype(tag, name, Some(region)),
        _ => Unknown,
    }
}

/// `<name>.service` is a service; `_<tag>.service` is the empty non-terminal above RFC 2782 names.
fn service_or_tag_tree<'a>(first: &'a str, region: Option<&'a str>) -> Target<'a> {
    match (first.strip_prefix('_'), region) {
        (Some("tcp"), None) => Target::EmptyNonTerminal,
        (Some(tag), None) => Target::TagNonTerminal(tag),
        // `_x.service.<region>` is not a form we serve.
        (Some(_), Some(_)) => Target::Unknown,
        (None, region) => Target::Service { service: first, tag: None, region, spelling: Spelling::Plain },
    }
}

/// `<tag>.<name>.service` or RFC 2782's `_<name>._<tag>.service`.
fn service_name<'a>(left: &'a str, right: &'a str, region: Option<&'a str>) -> Target<'a> {
    match (left.strip_prefix('_'), right.strip_prefix('_')) {
        (Some(service), Some("tcp")) => Target::Service { service, tag: None, region, spelling: Spelling::ServiceType },
        (Some(service), Some(tag)) => Target::Service { service, tag: Some(tag), region, spelling: Spelling::Rfc2782 },
        (None, None) => Target::Service { service: right, tag: Some(left), region, spelling: Spelling::Plain },
        _ => Target::Unknown,
    }
}

/// `<id>._<name>._tcp.service`, or `_sub._<name>._tcp.service` above the subtypes.
fn dns_sd_name<'a>(first: &'a str, name: &'a str, region: Option<&'a str>) -> Target<'a> {
    let Some(service) = name.strip_prefix('_') else { return Target::Unknown };
    if first == "_sub" {
        return Target::Service { service, tag: None, region, spelling: Spelling::Subtypes };
    }
    Target::ServiceInstance { id: first, service, region }
}

/// `_<tag>._sub._<name>._tcp.service`.
fn subtype<'a>(tag: &'a str, name: &'a str, region: Option<&'a str>) -> Target<'a> {
    match (tag.strip_prefix('_'), name.strip_prefix('_')) {
        (Some(tag), Some(service)) => Target::Service { service, tag: Some(tag), region, spelling: Spelling::Subtype },
        _ => Target::Unknown,
    }
}

/// Returns true if `label` (an instance id, or the first label of a name
/// `<label>._<name>._tcp.service...`) names a DNS-SD instance there: every label does but
/// `_sub`, the subtypes' parent. An instance with that id (ids are any DNS label) has no DNS-SD
/// name, and is not browsed to: its name would not resolve.
pub(crate) fn is_instance_label(label: &[u8]) -> bool {
    !label.eq_ignore_ascii_case(b"_sub")
}

/// A service's DNS-SD service type (`_<name>._tcp`, RFC 6763 §7), if its name makes one: the
/// underscore must keep the label within 63 bytes.
pub fn service_type(service: &str) -> Option<String> {
    let label = format!("_{service}");
    fits(&[&label]).then(|| format!("{label}._tcp"))
}

/// Returns true if every label is one a DNS name can hold (1 to 63 bytes).
fn fits(labels: &[&str]) -> bool {
    labels.iter().all(|l| (1..=63).contains(&l.len()))
}

/// One of a service's names, as `service_names` gives them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceName<'a> {
    /// The region the name names, if any.
    pub region: Option<&'a str>,
    /// Position for `ServiceView::entry`.
    pub entry: u32,
    pub spelling: Spelling,
}

impl ServiceName<'_> {
    /// The name's own SRV rotation: RFC 2782's spellings rotate apart from the plain one.
    pub fn rfc2782(&self) -> bool {
        self.spelling != Spelling::Plain
    }
}

/// Calls `f` with every name of a service (its labels below the domain) that `classify` reads
/// back as that name: with tags or regions spelled like `_tcp` or `service`, a generated name
/// can mean something else, and then it is not this service's. Names with a label too long for
/// DNS (a 63-byte name or tag with its underscore) no query can ask, and are left out.
pub(crate) fn service_names<'v>(view: &'v ServiceView, mut f: impl FnMut(&[&str], ServiceName<'v>)) {
    // The regions whose `_sub` parent was given already: once per region, with its first tag.
    let mut subtypes_in: Vec<Option<&str>> = Vec::new();
    for form in view.name_forms() {
        let mut give = |labels: &[&str], tag: Option<&'v str>, spelling: Spelling| {
            let meant = Target::Service { service: form.service, tag, region: form.region, spelling };
            let ok = fits(labels) && classify_labels(labels) == meant;
            if ok {
                f(labels, ServiceName { region: form.region, entry: form.index, spelling });
            }
            ok
        };
        let mut plain: Vec<&str> = form.tag.into_iter().collect();
        plain.extend([form.service, "service"]);
        plain.extend(form.region);
        give(&plain, form.tag, Spelling::Plain);
        let (under_name, under_tag) = (format!("_{}", form.service), format!("_{}", form.tag.unwrap_or("tcp")));
        let spelling = if form.tag.is_some() { Spelling::Rfc2782 } else { Spelling::ServiceType };
        let mut rfc = vec![under_name.as_str(), under_tag.as_str(), "service"];
        rfc.extend(form.region);
        give(&rfc, form.tag, spelling);
        if form.tag.is_some() {
            let mut sub = vec![under_tag.as_str(), "_sub", under_name.as_str(), "_tcp", "service"];
            sub.extend(form.region);
            if give(&sub, form.tag, Spelling::Subtype) && !subtypes_in.contains(&form.region) {
                subtypes_in.push(form.region);
                give(&sub[1..], None, Spelling::Subtypes);
            }
        }
    }
}

/// Returns true if `_sub._<name>._tcp.service[.<region>]` exists: the service has a subtype there.
pub(crate) fn has_subtypes(view: &ServiceView, region: Option<&str>) -> bool {
    let mut found = false;
    service_names(view, |_, name| found |= name.spelling == Spelling::Subtypes && name.region == region);
    found
}

/// The reverse-mapping domain RFC 6763 §11 derives from a network: the `in-addr.arpa` or
/// `ip6.arpa` name of its base address (`10.1.0.0/16` → `0.0.1.10.in-addr.arpa.`), under which
/// a host of that network asks for its browse domains.
pub fn reverse_zone(net: &IpNet) -> LowerName {
    LowerName::new(&Name::from(net.network()))
}

/// Returns true if `name` asks for the browse domains (`b`, `db` or `lb._dns-sd._udp`) under one
/// of the reverse zones `zones`.
pub(crate) fn asks_browse_domains(name: &LowerName, zones: &[LowerName]) -> bool {
    let mut labels = name.iter();
    let (Some(first), Some(b"_dns-sd"), Some(b"_udp")) = (labels.next(), labels.next(), labels.next()) else {
        return false;
    };
    BROWSE.iter().any(|b| b.as_bytes() == first)
        && zones.iter().any(|z| name.num_labels() == z.num_labels() + 3 && z.zone_of(name))
}

/// The address a reverse name asks about: `d.c.b.a.in-addr.arpa` or the 32 nibbles of
/// `...ip6.arpa`; `None` for anything else (including partial names).
pub fn reverse_ip(name: &LowerName) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    match labels.as_slice() {
        [d, c, b, a, in_addr, arpa] if *in_addr == b"in-addr" && *arpa == b"arpa" => {
            let octet = |l: &[u8]| std::str::from_utf8(l).ok()?.parse::<u8>().ok();
            Some(IpAddr::V4(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?)))
        }
        [nibbles @ .., ip6, arpa] if nibbles.len() == 32 && *ip6 == b"ip6" && *arpa == b"arpa" => {
            let mut value: u128 = 0;
            for label in nibbles.iter().rev() {
                let [n] = label else { return None };
                value = value << 4 | (*n as char).to_digit(16)? as u128;
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Target::*;
    use super::*;
    use std::str::FromStr;

    #[test]
    fn reverse_names() {
        let ip = |s: &str| reverse_ip(&LowerName::from_str(s).unwrap());
        assert_eq!(ip("4.3.2.1.in-addr.arpa."), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(ip("3.2.1.in-addr.arpa."), None);
        assert_eq!(ip("300.3.2.1.in-addr.arpa."), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(ip(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(ip("example.com."), None);
    }

    #[test]
    fn every_name_form() {
        use Spelling::*;
        let domain = LowerName::from_str("local.").unwrap();
        let svc = |service, tag, region| Service { service, tag, region, spelling: Plain };
        let rfc = |service, tag, region, spelling| Service { service, tag, region, spelling };
        let cases = [
            ("local.", Some(Apex)),
            ("NS.local.", Some(Nameserver)),
            ("Order-Service.service.local.", Some(svc("order-service", None, None))),
            ("v1.order-service.service.local.", Some(svc("order-service", Some("v1"), None))),
            ("order-service.service.us-east-1.local.", Some(svc("order-service", None, Some("us-east-1")))),
            ("v1.order-service.service.eu.local.", Some(svc("order-service", Some("v1"), Some("eu")))),
            ("_order-service._tcp.service.local.", Some(rfc("order-service", None, None, ServiceType))),
            ("_order-service._v1.service.local.", Some(rfc("order-service", Some("v1"), None, Rfc2782))),
            ("_order-service._tcp.service.eu.local.", Some(rfc("order-service", None, Some("eu"), ServiceType))),
            ("order-1.instance.local.", Some(Instance { id: "order-1" })),
            ("service.local.", Some(EmptyNonTerminal)),
            ("instance.local.", Some(EmptyNonTerminal)),
            ("_tcp.service.local.", Some(EmptyNonTerminal)),
            ("_v1.service.local.", Some(TagNonTerminal("v1"))),
            ("eu.local.", Some(RegionNonTerminal("eu"))),
            ("service.eu.local.", Some(RegionNonTerminal("eu"))),
            ("_tcp.service.eu.local.", Some(RegionNonTerminal("eu"))),
            // DNS-SD (RFC 6763).
            ("_services._dns-sd._udp.service.local.", Some(ServiceTypes)),
            ("_dns-sd._udp.service.local.", Some(EmptyNonTerminal)),
            ("_udp.service.local.", Some(EmptyNonTerminal)),
            ("B._dns-sd._udp.local.", Some(BrowseDomains)),
            ("db._dns-sd._udp.local.", Some(BrowseDomains)),
            ("lb._dns-sd._udp.service.local.", Some(BrowseDomains)),
            ("r._dns-sd._udp.local.", Some(Unknown)),
            ("_dns-sd._udp.local.", Some(EmptyNonTerminal)),
            ("_udp.local.", Some(EmptyNonTerminal)),
            (
                "order-1._order-service._tcp.service.local.",
                Some(ServiceInstance { id: "order-1", service: "order-service", region: None }),
            ),
            (
                "order-1._order-service._tcp.service.eu.local.",
                Some(ServiceInstance { id: "order-1", service: "order-service", region: Some("eu") }),
            ),
            ("_v1._sub._order-service._tcp.service.local.", Some(rfc("order-service", Some("v1"), None, Subtype))),
            (
                "_v1._sub._order-service._tcp.service.eu.local.",
                Some(rfc("order-service", Some("v1"), Some("eu"), Subtype)),
            ),
            ("_sub._order-service._tcp.service.local.", Some(rfc("order-service", None, None, Subtypes))),
            ("_sub._order-service._tcp.service.eu.local.", Some(rfc("order-service", None, Some("eu"), Subtypes))),
            ("v1._sub._order-service._tcp.service.local.", Some(Unknown)),
            ("order-1.order-service._tcp.service.local.", Some(Unknown)),
            ("x.order-1._order-service._tcp.service.local.", Some(Unknown)),
            ("a.b.c.d.e.f.g.local.", Some(Unknown)),
            ("a.b.c.d.e.local.", Some(Unknown)),
            ("x.y.local.", Some(Unknown)),
            ("_a.b.service.local.", Some(Unknown)),
            ("example.com.", None),
            ("localhost.", None),
        ];
        for (name, want) in cases {
            let name = LowerName::from_str(name).unwrap();
            assert_eq!(classify(&name, &domain, None), want, "{name}");
        }
    }

    #[test]
    fn consul_datacenter_qualifiers() {
        let domain = LowerName::from_str("consul.").unwrap();
        let without_region = ConsulNames { local: Some("dc1".into()) };
        let with_region = ConsulNames { local: None };
        let web = |tag, region, spelling| Some(Service { service: "web", tag, region, spelling });
        let cases = [
            ("web.service.consul.", &without_region, web(None, None, Spelling::Plain)),
            ("web.service.dc1.consul.", &without_region, web(None, None, Spelling::Plain)),
            ("WEB.service.DC1.dc.consul.", &without_region, web(None, None, Spelling::Plain)),
            ("v1.web.service.dc1.consul.", &without_region, web(Some("v1"), None, Spelling::Plain)),
            ("_web._tcp.service.dc1.consul.", &without_region, web(None, None, Spelling::ServiceType)),
            ("_web._v1.service.dc1.dc.consul.", &without_region, web(Some("v1"), None, Spelling::Rfc2782)),
            ("_v1._sub._web._tcp.service.dc1.dc.consul.", &without_region, web(Some("v1"), None, Spelling::Subtype)),
            // Another datacenter is a region, as without consul_names.
            ("web.service.eu.consul.", &without_region, web(None, Some("eu"), Spelling::Plain)),
            ("web.service.eu.dc.consul.", &without_region, web(None, Some("eu"), Spelling::Plain)),
            ("web.service.eu.dc.consul.", &with_region, web(None, Some("eu"), Spelling::Plain)),
            ("web.service.dc1.consul.", &with_region, web(None, Some("dc1"), Spelling::Plain)),
            // Only right after `service` (or `node`).
            ("dc1.instance.consul.", &without_region, Some(Instance { id: "dc1" })),
            (
                "dc.service.consul.",
                &without_region,
                Some(Service { service: "dc", tag: None, region: None, spelling: Spelling::Plain }),
            ),
            ("service.dc1.consul.", &without_region, Some(EmptyNonTerminal)),
        ];
        for (name, consul, want) in cases {
            let name = LowerName::from_str(name).unwrap();
            assert_eq!(classify(&name, &domain, Some(consul)), want, "{name}");
        }
        let plain = LowerName::from_str("web.service.dc1.dc.consul.").unwrap();
        assert_eq!(classify(&plain, &domain, None), Some(Unknown), "read so only with consul_names");
    }

    #[test]
    fn service_types_fit_in_a_label() {
        assert_eq!(service_type("order-service").as_deref(), Some("_order-service._tcp"));
        assert_eq!(service_type(&"x".repeat(62)).map(|t| t.len()), Some(63 + 5));
        assert_eq!(service_type(&"x".repeat(63)), None, "`_` and 63 bytes make no label");
    }

    #[test]
    fn browse_domains_are_asked_under_the_networks_reverse_zones() {
        let zones: Vec<LowerName> =
            ["10.1.2.3/16", "fd00:1::/64"].iter().map(|n| reverse_zone(&n.parse().unwrap())).collect();
        assert_eq!(zones[0].to_string(), "0.0.1.10.in-addr.arpa.", "the base address, host bits zero");
        assert!(zones[1].to_string().ends_with("1.0.0.0.0.0.d.f.ip6.arpa."), "{}", zones[1]);
        let asks = |n: &str| asks_browse_domains(&LowerName::from_str(n).unwrap(), &zones);
        assert!(asks("b._dns-sd._udp.0.0.1.10.in-addr.arpa."));
        assert!(asks("LB._dns-sd._udp.0.0.1.10.in-addr.arpa."));
        assert!(asks(&format!("db._dns-sd._udp.{}", zones[1])));
        assert!(!asks("r._dns-sd._udp.0.0.1.10.in-addr.arpa."), "registration domains are not served");
        assert!(!asks("b._dns-sd._udp.0.0.2.10.in-addr.arpa."), "another network");
        assert!(!asks("b._dns-sd._udp.0.1.10.in-addr.arpa."));
        assert!(!asks("x.b._dns-sd._udp.0.0.1.10.in-addr.arpa."));
        assert!(!asks("0.0.1.10.in-addr.arpa."));
    }
}
