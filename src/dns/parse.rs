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
//! Names above existing ones (`service.D`, `_tcp.service.D`, `<region>.D`, ...) are empty
//! non-terminals: they exist but hold no records (RFC 8020).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::LowerName;

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
        /// Asked in RFC 2782's `_<name>._<tag>` form: another name, so another rotation.
        rfc2782: bool,
    },
    Instance {
        id: &'a str,
    },
    /// A name that exists only because names below it may: answered NODATA.
    EmptyNonTerminal,
    /// An empty non-terminal that exists only if some instance carries this region or tag.
    RegionNonTerminal(&'a str),
    TagNonTerminal(&'a str),
    /// Inside the domain but matching no form: NXDOMAIN.
    Unknown,
}

/// Classifies `name` relative to `domain`; `None` if it is outside the domain. Both are lowercase
/// (that is what `LowerName` guarantees), so matching is case-insensitive.
pub fn classify<'a>(name: &'a LowerName, domain: &LowerName) -> Option<Target<'a>> {
    if !domain.zone_of(name) {
        return None;
    }
    let relative = usize::from(name.num_labels() - domain.num_labels());
    let mut labels = [""; 4];
    if relative > labels.len() {
        return Some(Target::Unknown);
    }
    for (slot, label) in labels.iter_mut().zip(name.iter().take(relative)) {
        match std::str::from_utf8(label) {
            Ok(s) => *slot = s,
            Err(_) => return Some(Target::Unknown),
        }
    }
    Some(classify_labels(&labels[..relative]))
}

pub(crate) fn classify_labels<'a>(labels: &[&'a str]) -> Target<'a> {
    use Target::*;
    match *labels {
        [] => Apex,
        ["ns"] => Nameserver,
        ["service"] | ["instance"] => EmptyNonTerminal,
        [id, "instance"] => Instance { id },
        [region] => RegionNonTerminal(region),
        ["service", region] => RegionNonTerminal(region),
        [first, "service"] => service_or_tag_tree(first, None),
        ["_tcp", "service", region] => RegionNonTerminal(region),
        [first, "service", region] => service_or_tag_tree(first, Some(region)),
        [left, right, "service"] => service_name(left, right, None),
        [left, right, "service", region] => service_name(left, right, Some(region)),
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
        (None, region) => Target::Service { service: first, tag: None, region, rfc2782: false },
    }
}

/// `<tag>.<name>.service` or RFC 2782's `_<name>._<tag>.service`.
fn service_name<'a>(left: &'a str, right: &'a str, region: Option<&'a str>) -> Target<'a> {
    match (left.strip_prefix('_'), right.strip_prefix('_')) {
        (Some(service), Some(tag)) => {
            Target::Service { service, tag: (tag != "tcp").then_some(tag), region, rfc2782: true }
        }
        (None, None) => Target::Service { service: right, tag: Some(left), region, rfc2782: false },
        _ => Target::Unknown,
    }
}

/// One of a service's names, as `service_names` gives them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceName<'a> {
    /// The tag the name selects by, if any.
    pub tag: Option<&'a str>,
    /// Position for `ServiceView::entry`.
    pub entry: u32,
    /// The RFC 2782 form (`_<name>._<tag>`): its own SRV rotation.
    pub rfc2782: bool,
    /// The name names a region, so its answer is the same for every client.
    pub names_region: bool,
}

/// Calls `f` with every name of a service (its labels below the domain) that `classify` reads
/// back as that name: with tags or regions spelled like `_tcp` or `service`, a generated name
/// can mean something else, and then it is not this service's.
pub(crate) fn service_names<'v>(view: &'v ServiceView, mut f: impl FnMut(&[&str], ServiceName<'v>)) {
    for form in view.name_forms() {
        let meant = |rfc2782| Target::Service { service: form.service, tag: form.tag, region: form.region, rfc2782 };
        let name =
            |rfc2782| ServiceName { tag: form.tag, entry: form.index, rfc2782, names_region: form.region.is_some() };
        let mut plain: Vec<&str> = form.tag.into_iter().collect();
        plain.extend([form.service, "service"]);
        plain.extend(form.region);
        if classify_labels(&plain) == meant(false) {
            f(&plain, name(false));
        }
        let (under_name, under_tag) = (format!("_{}", form.service), format!("_{}", form.tag.unwrap_or("tcp")));
        let mut rfc = vec![under_name.as_str(), under_tag.as_str(), "service"];
        rfc.extend(form.region);
        if classify_labels(&rfc) == meant(true) {
            f(&rfc, name(true));
        }
    }
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
        let domain = LowerName::from_str("local.").unwrap();
        let svc = |service, tag, region| Service { service, tag, region, rfc2782: false };
        let rfc = |service, tag, region| Service { service, tag, region, rfc2782: true };
        let cases = [
            ("local.", Some(Apex)),
            ("NS.local.", Some(Nameserver)),
            ("Order-Service.service.local.", Some(svc("order-service", None, None))),
            ("v1.order-service.service.local.", Some(svc("order-service", Some("v1"), None))),
            ("order-service.service.us-east-1.local.", Some(svc("order-service", None, Some("us-east-1")))),
            ("v1.order-service.service.eu.local.", Some(svc("order-service", Some("v1"), Some("eu")))),
            ("_order-service._tcp.service.local.", Some(rfc("order-service", None, None))),
            ("_order-service._v1.service.local.", Some(rfc("order-service", Some("v1"), None))),
            ("_order-service._tcp.service.eu.local.", Some(rfc("order-service", None, Some("eu")))),
            ("order-1.instance.local.", Some(Instance { id: "order-1" })),
            ("service.local.", Some(EmptyNonTerminal)),
            ("instance.local.", Some(EmptyNonTerminal)),
            ("_tcp.service.local.", Some(EmptyNonTerminal)),
            ("_v1.service.local.", Some(TagNonTerminal("v1"))),
            ("eu.local.", Some(RegionNonTerminal("eu"))),
            ("service.eu.local.", Some(RegionNonTerminal("eu"))),
            ("_tcp.service.eu.local.", Some(RegionNonTerminal("eu"))),
            ("a.b.c.d.e.local.", Some(Unknown)),
            ("x.y.local.", Some(Unknown)),
            ("_a.b.service.local.", Some(Unknown)),
            ("example.com.", None),
            ("localhost.", None),
        ];
        for (name, want) in cases {
            let name = LowerName::from_str(name).unwrap();
            assert_eq!(classify(&name, &domain), want, "{name}");
        }
    }
}
