//! The query side of the fast path: which queries it may answer, where their parts are, and
//! the header and OPT of its answers (with the options the query asked for: a server cookie,
//! the client subnet echoed with its scope, the server's NSID).

use std::net::IpAddr;

use crate::dns::answer::Transport;
use crate::dns::edns::{self, Options};

pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_AAAA: u16 = 28;
pub(super) const TYPE_SRV: u16 = 33;
pub(super) const TYPE_TXT: u16 = 16;
pub(super) const TYPE_PTR: u16 = 12;
pub(super) const TYPE_OPT: u16 = 41;
pub(super) const CLASS_IN: u16 = 1;
pub(super) const RCODE_NXDOMAIN: u8 = 3;
/// A pointer to the question's name, which always starts right after the 12-byte header.
pub(super) const QNAME_POINTER: [u8; 2] = [0xC0, 0x0C];

/// Who asks, and how: what an answer's cookie, region and size depend on.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: IpAddr,
    pub transport: Transport,
}

/// How the question is laid out in a query that passed the checks.
pub(super) struct Question<'a> {
    /// End of the question (and start of the answer section).
    pub end: usize,
    pub qtype: u16,
    /// Length of the wire name, with its final zero byte.
    pub name_len: usize,
    /// The client's OPT record, if it sent one.
    pub edns: Option<Edns<'a>>,
}

/// A query's OPT record.
#[derive(Clone, Copy)]
pub(super) struct Edns<'a> {
    pub payload: u16,
    pub dnssec_ok: bool,
    pub options: Options<'a>,
}

/// The OPT record of an answer: the payload we honour, and the options the query asked for.
#[derive(Default)]
pub(super) struct Opt<'a> {
    pub payload: u16,
    pub dnssec_ok: bool,
    /// The client cookie and our server cookie.
    pub cookie: Option<[u8; 24]>,
    /// The query's client subnet (family, source prefix, address bytes) and our scope.
    pub subnet: Option<(edns::Subnet<'a>, u8)>,
    pub nsid: Option<&'a [u8]>,
}

impl Opt<'_> {
    /// The record's size on the wire.
    pub fn len(&self) -> usize {
        11 + self.cookie.map_or(0, |c| 4 + c.len())
            + self.subnet.map_or(0, |(s, _)| 8 + s.raw.len())
            + self.nsid.map_or(0, |n| 4 + n.len())
    }

    fn write(&self, out: &mut Vec<u8>) {
        let data_len = (self.len() - 11) as u16;
        // Root owner, OPT, our payload, extended rcode 0, version 0, DO echoed (RFC 3225).
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&self.payload.to_be_bytes());
        out.extend_from_slice(&[0, 0, if self.dnssec_ok { 0x80 } else { 0 }, 0]);
        out.extend_from_slice(&data_len.to_be_bytes());
        // In the order the full handler writes them.
        if let Some(cookie) = &self.cookie {
            option(out, edns::COOKIE, &[cookie]);
        }
        if let Some((s, scope)) = &self.subnet {
            let [f0, f1] = s.family.to_be_bytes();
            option(out, edns::SUBNET, &[&[f0, f1, s.source_prefix, *scope], s.raw]);
        }
        if let Some(nsid) = self.nsid {
            option(out, edns::NSID, &[nsid]);
        }
    }
}

fn option(out: &mut Vec<u8>, code: u16, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Header flags and counts, and the OPT record when the client sent one.
pub(super) fn finish(
    out: &mut Vec<u8>,
    opt: Option<&Opt<'_>>,
    rcode: u8,
    answers: u16,
    authorities: u16,
    additionals: u16,
) {
    let mut additionals = additionals;
    if let Some(opt) = opt {
        opt.write(out);
        additionals += 1;
    }
    // QR, opcode QUERY, AA, RD copied; RA, AD, Z clear; CD copied.
    out[2] = 0x80 | 0x04 | (out[2] & 0x01);
    out[3] = (out[3] & 0x10) | rcode;
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..10].copy_from_slice(&authorities.to_be_bytes());
    out[10..12].copy_from_slice(&additionals.to_be_bytes());
}

/// Checks the query is one the fast path may answer and finds its parts; `None` otherwise
/// (the full handler then answers, FORMERR for malformed options included).
pub(super) fn parse(query: &[u8]) -> Option<Question<'_>> {
    if query.len() < 17 {
        return None;
    }
    let counts = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    // QR=0, opcode QUERY, no TC; exactly one question, nothing but an optional OPT after it.
    if query[2] & 0xFA != 0 || counts(4) != 1 || counts(6) != 0 || counts(8) != 0 || counts(10) > 1 {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = *query.get(pos)? as usize;
        if len & 0xC0 != 0 || pos - 12 + 1 + len > 255 {
            return None; // Compression or an overlong name: let the full parser judge it.
        }
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name_len = pos - 12;
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(pos + 2)?, *query.get(pos + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    let end = pos + 4;
    let edns = if counts(10) == 1 {
        // Root name, OPT, payload, extended rcode 0, version 0, flags, options to the end.
        let opt = query.get(end..)?;
        if opt.len() < 11 || opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
            return None;
        }
        if opt[5] != 0 || opt[6] != 0 {
            return None;
        }
        let data = &opt[11..];
        if usize::from(u16::from_be_bytes([opt[9], opt[10]])) != data.len() {
            return None;
        }
        let options = edns::parse(data).ok()?;
        Some(Edns { payload: u16::from_be_bytes([opt[3], opt[4]]), dnssec_ok: opt[7] & 0x80 != 0, options })
    } else if end == query.len() {
        None
    } else {
        return None;
    };
    Some(Question { end, qtype, name_len, edns })
}
