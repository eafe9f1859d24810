//! The EDNS(0) options of a query, read from the OPT record's data, for the fast path and the
//! full handler alike, so that both take and refuse exactly the same queries: COOKIE (RFC 7873),
//! Client Subnet (RFC 7871) and NSID (RFC 5001). Padding (RFC 7830) and options we do not know
//! are skipped (RFC 6891 §6.1.2). A malformed COOKIE or Client Subnet, or either twice, is
//! FORMERR, as both RFCs say; so is option data that does not add up to the record's length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const NSID: u16 = 3;
pub(crate) const SUBNET: u16 = 8;
pub(crate) const COOKIE: u16 = 10;

/// What a query's OPT record asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options<'a> {
    pub cookie: Option<Cookie<'a>>,
    pub subnet: Option<Subnet<'a>>,
    /// The client asks for the server's identifier.
    pub nsid: bool,
}

/// A COOKIE option: the client's cookie, and the server cookie it was given before (empty on a
/// client's first query to this server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cookie<'a> {
    pub client: [u8; 8],
    pub server: &'a [u8],
}

/// A Client Subnet option of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet<'a> {
    /// 1 (IPv4) or 2 (IPv6).
    pub family: u16,
    pub source_prefix: u8,
    /// The address, zero past the source prefix.
    pub addr: IpAddr,
    /// The address bytes as sent (as many as the prefix covers), for the echo.
    pub raw: &'a [u8],
}

/// Why a query's options are refused (FORMERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// Reads the options of an OPT record's data.
pub(crate) fn parse(mut data: &[u8]) -> Result<Options<'_>, Malformed> {
    let mut out = Options::default();
    while !data.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = data else { return Err(Malformed("an option header cut short")) };
        let (code, len) = (u16::from_be_bytes([*c0, *c1]), usize::from(u16::from_be_bytes([*l0, *l1])));
        if rest.len() < len {
            return Err(Malformed("option data past the end of the record"));
        }
        let (value, next) = rest.split_at(len);
        match code {
            COOKIE if out.cookie.is_some() => return Err(Malformed("two COOKIE options")),
            COOKIE => out.cookie = Some(cookie(value)?),
            SUBNET if out.subnet.is_some() => return Err(Malformed("two Client Subnet options")),
            SUBNET => out.subnet = Some(subnet(value)?),
            NSID => out.nsid = true,
            // Padding and options we do not implement: ignored, as RFC 6891 §6.1.2 says.
            _ => {}
        }
        data = next;
    }
    Ok(out)
}

/// RFC 7873 §5.2.2: a client cookie of 8 bytes, then nothing or a server cookie of 8 to 32.
fn cookie(value: &[u8]) -> Result<Cookie<'_>, Malformed> {
    if value.len() != 8 && !(16..=40).contains(&value.len()) {
        return Err(Malformed("a COOKIE option of a length RFC 7873 does not allow"));
    }
    let client = value[..8].try_into().expect("eight bytes");
    Ok(Cookie { client, server: &value[8..] })
}

/// RFC 7871 §6 and §7.1.2: a known family, a source prefix no longer than its addresses, no
/// scope in a query, exactly the address bytes the prefix covers, and zero bits past it.
fn subnet(value: &[u8]) -> Result<Subnet<'_>, Malformed> {
    let [f0, f1, source, scope, raw @ ..] = value else { return Err(Malformed("a Client Subnet option cut short")) };
    let family = u16::from_be_bytes([*f0, *f1]);
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed("a Client Subnet family other than IPv4 and IPv6")),
    };
    if *source > width {
        return Err(Malformed("a Client Subnet source prefix longer than the address"));
    }
    if *scope != 0 {
        return Err(Malformed("a Client Subnet scope prefix in a query"));
    }
    if raw.len() != usize::from(source.div_ceil(8)) {
        return Err(Malformed("Client Subnet address bytes that do not match the source prefix"));
    }
    if source % 8 != 0 && raw.last().is_some_and(|last| last & (0xFF >> (source % 8)) != 0) {
        return Err(Malformed("Client Subnet address bits set past the source prefix"));
    }
    let addr = if family == 1 {
        let mut octets = [0u8; 4];
        octets[..raw.len()].copy_from_slice(raw);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets[..raw.len()].copy_from_slice(raw);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Ok(Subnet { family, source_prefix: *source, addr, raw })
}

/// The OPT record of a message, as raw parts: where the full handler finds the options'
/// bytes that hickory has already parsed its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt<'a> {
    pub data: &'a [u8],
}

/// Finds the first OPT record in the additional section of `message`; `None` if there is none
/// or the message does not hold together.
pub(crate) fn find_opt(message: &[u8]) -> Option<Opt<'_>> {
    let count = |i: usize| usize::from(u16::from_be_bytes([message[i], message[i + 1]]));
    if message.len() < 12 {
        return None;
    }
    let (questions, records, additionals) = (count(4), count(6) + count(8), count(10));
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(message, pos)? + 4;
    }
    for i in 0..records + additionals {
        pos = skip_name(message, pos)?;
        let fixed = message.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = message.get(pos + 10..pos + 10 + len)?;
        if i >= records && rtype == 41 {
            return Some(Opt { data });
        }
        pos += 10 + len;
    }
    None
}

/// The position after a name that starts at `pos`.
fn skip_name(message: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *message.get(pos)?;
        match len & 0xC0 {
            0xC0 => return Some(pos + 2).filter(|&end| end <= message.len()),
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn options_in_any_order_and_unknown_ones_skipped() {
        let mut data = option(12, &[0; 20]); // padding
        data.extend(option(SUBNET, &[0, 1, 24, 0, 192, 168, 1]));
        data.extend(option(65001, b"whatever"));
        data.extend(option(NSID, &[]));
        data.extend(option(COOKIE, &[1, 2, 3, 4, 5, 6, 7, 8]));
        let got = parse(&data).unwrap();
        assert_eq!(got.cookie, Some(Cookie { client: [1, 2, 3, 4, 5, 6, 7, 8], server: &[] }));
        let subnet = got.subnet.unwrap();
        assert_eq!((subnet.family, subnet.source_prefix), (1, 24));
        assert_eq!(subnet.addr, IpAddr::from([192, 168, 1, 0]));
        assert!(got.nsid);
        assert_eq!(parse(&[]).unwrap(), Options::default());
    }

    #[test]
    fn malformed_cookies_and_subnets_are_refused() {
        let mut twice = option(COOKIE, &[1; 8]);
        twice.extend(option(COOKIE, &[2; 8]));
        let mut two_subnets = option(SUBNET, &[0, 1, 0, 0]);
        two_subnets.extend(option(SUBNET, &[0, 1, 0, 0]));
        let bad: &[(&str, Vec<u8>)] = &[
            ("cookie of 7", option(COOKIE, &[1; 7])),
            ("cookie of 9", option(COOKIE, &[1; 9])),
            ("cookie of 15", option(COOKIE, &[1; 15])),
            ("cookie of 41", option(COOKIE, &[1; 41])),
            ("two cookies", twice),
            ("family 3", option(SUBNET, &[0, 3, 0, 0])),
            ("v4 /33", option(SUBNET, &[0, 1, 33, 0, 1, 2, 3, 4, 5])),
            ("v6 /129", option(SUBNET, &[0, 2, 129, 0])),
            ("scope set", option(SUBNET, &[0, 1, 24, 8, 10, 0, 0])),
            ("too few bytes", option(SUBNET, &[0, 1, 24, 0, 10, 0])),
            ("too many bytes", option(SUBNET, &[0, 1, 16, 0, 10, 0, 0])),
            ("bits past the prefix", option(SUBNET, &[0, 1, 20, 0, 10, 0, 0x0F])),
            ("cut short", option(SUBNET, &[0, 1])),
            ("two subnets", two_subnets),
            ("header cut", vec![0, 10, 0]),
            ("data past the end", vec![0, 10, 0, 8, 1, 2]),
        ];
        for (what, data) in bad {
            assert!(parse(data).is_err(), "{what}");
        }
        // The edges that are fine.
        for data in [
            option(COOKIE, &[1; 16]),
            option(COOKIE, &[1; 40]),
            option(SUBNET, &[0, 1, 0, 0]),
            option(SUBNET, &[0, 2, 128, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            option(SUBNET, &[0, 1, 20, 0, 10, 0, 0xF0]),
            option(NSID, b"non-empty is still a request"),
        ] {
            assert!(parse(&data).is_ok(), "{data:?}");
        }
    }

    #[test]
    fn the_opt_record_is_found_past_compressed_names_and_other_records() {
        use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
        use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
        use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
        let mut m = Message::new(1, MessageType::Query, OpCode::Query);
        let name = Name::from_ascii("web.service.local.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_additional(Record::from_rdata(name, 5, RData::A(A::new(10, 0, 0, 1))));
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![7; 8]));
        m.edns = Some(e);
        let bytes = m.to_vec().unwrap();
        let opt = find_opt(&bytes).unwrap();
        assert_eq!(parse(opt.data).unwrap().cookie.unwrap().client, [7; 8]);
        assert!(find_opt(&bytes[..bytes.len() - 3]).is_none(), "a record cut short");
    }
}
