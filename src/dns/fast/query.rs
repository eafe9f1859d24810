//! The query side of the fast path: which queries it may answer, where their parts are, and
//! the header and OPT of its answers.

pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_AAAA: u16 = 28;
pub(super) const TYPE_SRV: u16 = 33;
pub(super) const TYPE_TXT: u16 = 16;
pub(super) const TYPE_OPT: u16 = 41;
pub(super) const TYPE_ANY: u16 = 255;
pub(super) const CLASS_IN: u16 = 1;
pub(super) const RCODE_NXDOMAIN: u8 = 3;
/// A pointer to the question's name, which always starts right after the 12-byte header.
pub(super) const QNAME_POINTER: [u8; 2] = [0xC0, 0x0C];

/// How the question is laid out in a query that passed the checks.
pub(super) struct Question {
    /// End of the question (and start of the answer section).
    pub end: usize,
    pub qtype: u16,
    /// Length of the wire name, with its final zero byte.
    pub name_len: usize,
    /// The client's EDNS: (payload size, DO bit), if it sent an OPT.
    pub edns: Option<(u16, bool)>,
    /// The answer's size limit; also the payload our OPT advertises.
    pub limit: u16,
}

/// Header flags and counts, and the OPT record when the client sent one.
pub(super) fn finish(out: &mut Vec<u8>, q: &Question, rcode: u8, answers: u16, authorities: u16, additionals: u16) {
    let mut additionals = additionals;
    if let Some((_, dnssec_ok)) = q.edns {
        // Root owner, OPT, our payload, extended rcode 0, version 0, DO echoed (RFC 3225), no data.
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&q.limit.to_be_bytes());
        out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        additionals += 1;
    }
    // QR, opcode QUERY, AA, RD copied; RA, AD, Z clear; CD copied.
    out[2] = 0x80 | 0x04 | (out[2] & 0x01);
    out[3] = (out[3] & 0x10) | rcode;
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..10].copy_from_slice(&authorities.to_be_bytes());
    out[10..12].copy_from_slice(&additionals.to_be_bytes());
}

/// Checks the query is one the fast path may answer and finds its parts; `None` otherwise.
pub(super) fn parse(query: &[u8]) -> Option<Question> {
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
        // Root name, OPT, payload, extended rcode, version 0, flags, no options, then the end.
        let opt = query.get(end..)?;
        if opt.len() != 11 || opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
            return None;
        }
        if opt[5] != 0 || opt[6] != 0 || opt[9] != 0 || opt[10] != 0 {
            return None;
        }
        Some((u16::from_be_bytes([opt[3], opt[4]]), opt[7] & 0x80 != 0))
    } else if end == query.len() {
        None
    } else {
        return None;
    };
    Some(Question { end, qtype, name_len, edns, limit: 512 })
}
