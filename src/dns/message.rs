//! Encoding a response: header, question, then whole records only, within the size the client
//! can take. The one place that decides what a response that does not fit looks like, for every
//! answer the full handler gives (ours, forwarded ones, refusals) and for zone transfers:
//!
//! - The OPT record's room is set aside first: it is always sent when the client sent one.
//! - Answers that do not all fit: as many whole answer records as fit (perhaps none), nothing in
//!   authority or additional, TC set, so the client asks again over TCP (RFC 2181 §9).
//! - Answers that fit but the rest does not: the authority section (the SOA of a negative
//!   answer) is needed to read the answer right, so TC as above; additional records (SRV glue)
//!   are extra, so as many whole ones as fit, without TC.
//!
//! hickory-proto encodes each record; one that overflows is taken back, and the message ends
//! at the last whole record. (hickory-server's own response
//! encoder rolls the offset back but leaves the overflowing record's first bytes in the buffer:
//! strict parsers reject such a message as having trailing bytes.)

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, Query};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// The parts of a response, before they are fitted to the client's size.
#[derive(Debug, Default)]
pub(crate) struct Sections<'a> {
    pub answers: &'a [Record],
    pub authorities: &'a [Record],
    pub additionals: &'a [Record],
}

/// What a message does with answers that do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Cut, and set TC: the client asks again over TCP.
    Truncate,
    /// Cut without TC: the caller sends the rest in messages of their own (a zone transfer).
    Continue,
}

/// Encodes a response with `meta`'s flags and code (TC added when needed), the question, the
/// records of `sections` that fit in `limit` bytes, and `edns` (always, when given).
pub(crate) fn encode(
    meta: Metadata,
    query: Option<&Query>,
    sections: &Sections<'_>,
    edns: Option<&Edns>,
    limit: u16,
) -> Vec<u8> {
    encode_part(meta, query, sections, edns, limit, Overflow::Truncate).0
}

/// As `encode`, and returns how many of the answers the message holds.
pub(crate) fn encode_part(
    meta: Metadata,
    query: Option<&Query>,
    sections: &Sections<'_>,
    edns: Option<&Edns>,
    limit: u16,
    overflow: Overflow,
) -> (Vec<u8>, usize) {
    let mut buf = Vec::with_capacity(usize::from(limit).min(4096));
    let (mut meta, counts) = match fill(&mut buf, meta, query, sections, edns, limit, overflow) {
        Ok(done) => done,
        Err(_) => {
            // Only a question or OPT too big for the limit gets here (not from a parsed query
            // and our own OPT): the header alone, saying so.
            buf.clear();
            let mut meta = meta;
            meta.truncation = true;
            buf.resize(12, 0);
            (meta, HeaderCounts::default())
        }
    };
    meta.message_type = hickory_proto::op::MessageType::Response;
    write_header(&mut buf, meta, counts);
    (buf, usize::from(counts.answers))
}

fn fill(
    buf: &mut Vec<u8>,
    mut meta: Metadata,
    query: Option<&Query>,
    sections: &Sections<'_>,
    edns: Option<&Edns>,
    limit: u16,
    overflow: Overflow,
) -> Result<(Metadata, HeaderCounts), ProtoError> {
    let mut enc = BinEncoder::new(buf);
    let opt_len = match edns {
        Some(e) => opt_size(e)?,
        None => 0,
    };
    // The encoder itself may hold a whole message; the room is kept here, record by record,
    // because hickory writes a name in full before it replaces it by a pointer, so its own limit
    // would turn away a record whose compressed form fits.
    let room = usize::from(limit).saturating_sub(opt_len);
    enc.set_max_size(u16::MAX);
    enc.emit_vec(&[0; 12])?;
    let mut counts = HeaderCounts::default();
    if let Some(q) = query {
        q.emit(&mut enc)?;
        counts.queries = 1;
    }
    if enc.offset() > room {
        return Err(ProtoError::MaxBufferSizeExceeded(room));
    }
    let answers = whole(&mut enc, sections.answers, room)?;
    counts.answers = answers as u16;
    let mut complete = answers == sections.answers.len();
    if complete {
        let mark = enc.offset();
        complete = whole(&mut enc, sections.authorities, room)? == sections.authorities.len();
        if complete {
            counts.authorities = sections.authorities.len() as u16;
        } else {
            // Part of the authority section would mislead: none of it.
            enc.set_offset(mark);
            enc.trim();
        }
    }
    if complete {
        counts.additionals = whole(&mut enc, sections.additionals, room)? as u16;
    } else if overflow == Overflow::Truncate {
        meta.truncation = true;
    }
    if let Some(e) = edns {
        e.emit(&mut enc)?;
        counts.additionals += 1;
    }
    Ok((meta, counts))
}

/// Emits as many of `records` as fit within `room` bytes of message, each whole; returns how
/// many. A record that does not fit is taken back with the name pointers it stored.
fn whole(enc: &mut BinEncoder<'_>, records: &[Record], room: usize) -> Result<usize, ProtoError> {
    for (n, record) in records.iter().enumerate() {
        let mark = enc.offset();
        let fits = match record.emit(enc) {
            Ok(()) => enc.offset() <= room,
            Err(ProtoError::MaxBufferSizeExceeded(_)) => false,
            Err(e) => return Err(e),
        };
        if !fits {
            enc.set_offset(mark);
            enc.trim();
            return Ok(n);
        }
    }
    Ok(records.len())
}

/// The encoded size of an OPT record.
fn opt_size(edns: &Edns) -> Result<usize, ProtoError> {
    let mut scratch = Vec::with_capacity(32);
    edns.emit(&mut BinEncoder::new(&mut scratch))?;
    Ok(scratch.len())
}

fn write_header(buf: &mut [u8], metadata: Metadata, counts: HeaderCounts) {
    let mut bytes = Vec::with_capacity(12);
    // A header always encodes: twelve fixed bytes.
    let _ = Header { metadata, counts }.emit(&mut BinEncoder::new(&mut bytes));
    buf[..12].copy_from_slice(&bytes);
}
