//! The one set of rules that decides a valid instance, whoever describes it: the HTTP API
//! (`api/register.rs`), zone files (`zones/parse.rs`) and the command line (`cli.rs`). Each rule
//! says what is wrong with a value (`Invalid`); the caller puts the field's name in front, spelt
//! the way its own users spell it (`Address`, `address`, `--address`), so the same bad input
//! gets the same answer on every path. docs/registering.md, "What a registration accepts", writes them down.
//!
//! Where the paths used to differ, the rule is what Consul accepts, narrowed to what DNS can
//! answer: host names may carry `_` and a trailing dot (DNS names do), are one spelling
//! (lowercase: DNS names are case-insensitive), and IPv4-mapped IPv6 addresses are the IPv4
//! addresses they stand for (answered as A records, where clients can use them).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::{Address, ServicePolicy};
use crate::duration::{self, DurationError};

/// Most `Meta` pairs per instance, and the longest key and value (Consul's limits: they also
/// keep one instance's TXT record, `key=value` strings, well within a DNS message).
pub const MAX_META: usize = 64;
pub const MAX_META_KEY: usize = 128;
pub const MAX_META_VALUE: usize = 512;
/// The longest DNS TTL: resolvers read a TTL with the top bit set as 0 (RFC 2181 §8).
pub const MAX_TTL: Duration = Duration::from_secs((1 << 31) - 1);
/// Meta keys that mean something to signpost (docs/dns.md, "Regions"; docs/zone-files.md).
pub const META_REGION: &str = "region";
pub const META_DNS_TTL: &str = "dns-ttl";
pub const META_DNS_ANSWER_LIMIT: &str = "dns-answer-limit";

/// Why a value breaks a rule. The text reads after the field's name: `Address: "300.1.1.1" is
/// neither an IP address nor a host name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("must not be empty")]
    Empty,
    #[error("{0:?} must be 1-63 characters of A-Z a-z 0-9 _ -, not starting or ending with '-'")]
    Label(String),
    #[error("{0:?} is not an address clients can reach; give the instance's own address")]
    Unspecified(String),
    #[error("{0:?} is neither an IP address nor a host name")]
    Address(String),
    #[error("has {0} keys; at most {MAX_META} are allowed")]
    MetaCount(usize),
    #[error("keys must be 1-{MAX_META_KEY} characters of A-Z a-z 0-9 _ -")]
    MetaKey,
    #[error("is longer than {MAX_META_VALUE} bytes")]
    MetaValue,
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("must be greater than 0")]
    NotPositive,
    #[error("{0:?} must be 0 or at least 1s: DNS TTLs are whole seconds")]
    SubSecondTtl(String),
    #[error("{0:?} is longer than a DNS TTL can be (at most {max}s)", max = MAX_TTL.as_secs())]
    LongTtl(String),
    #[error("{0:?} is not a whole number from 0 to {max}", max = u32::MAX)]
    Number(String),
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    #[error("{0:?} is not a valid HTTP header name")]
    HeaderName(String),
    #[error("{0:?} has a control character, which an HTTP header cannot carry")]
    HeaderValue(String),
    #[error("{0:?} is not an http:// or https:// URL with a host")]
    Url(String),
    #[error("{0:?} is not host:port (IPv6 as [addr]:port)")]
    TcpTarget(String),
}

/// A service name, an instance id or a region: one DNS label (`<id>.instance.D`,
/// `<name>.service.<region>.D`).
pub fn label(s: &str) -> Result<(), Invalid> {
    if is_dns_label(s) { Ok(()) } else { Err(Invalid::Label(s.to_string())) }
}

/// A tag: any non-empty text, as in Consul (`traefik.enable=true`); a tag that is not a DNS
/// label is kept and shown, and no DNS name reaches it.
pub fn tag(s: &str) -> Result<(), Invalid> {
    if s.is_empty() { Err(Invalid::Empty) } else { Ok(()) }
}

impl Address {
    /// An IP address (an IPv4-mapped IPv6 one is its IPv4 address) or a host name (its DNS
    /// labels, `_` allowed, a trailing dot dropped, lowercase). Surrounding space is ignored.
    /// The unspecified addresses are refused: nobody can reach an instance there.
    pub fn parse(text: &str) -> Result<Address, Invalid> {
        let s = text.trim();
        if s.is_empty() {
            return Err(Invalid::Empty);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            if ip.is_unspecified() {
                return Err(Invalid::Unspecified(s.to_string()));
            }
            return Ok(Address::Ip(ip));
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if is_host_name(name) {
            Ok(Address::Host(name.to_ascii_lowercase()))
        } else {
            Err(Invalid::Address(s.to_string()))
        }
    }
}

/// Returns true if `s` (without its trailing dot) is a host name: DNS labels, at most 253
/// characters, the last not all digits (no top-level domain is, RFC 3696 §2), so that a
/// mistyped IPv4 address (`10.0.0.300`) is not taken for a name.
fn is_host_name(s: &str) -> bool {
    let last = s.rsplit('.').next().unwrap_or_default();
    s.len() <= 253 && s.split('.').all(is_dns_label) && !last.bytes().all(|b| b.is_ascii_digit())
}

/// Returns true if `s` is 1–63 of `[A-Za-z0-9_-]`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// How many `Meta` pairs one instance may carry.
pub fn meta_count(n: usize) -> Result<(), Invalid> {
    if n > MAX_META { Err(Invalid::MetaCount(n)) } else { Ok(()) }
}

/// One `Meta` pair: the key as Consul allows it, the value at most `MAX_META_VALUE` bytes, and
/// the keys signpost reads (`region`, `dns-ttl`, `dns-answer-limit`) by their own rules.
pub fn meta_entry(key: &str, value: &str) -> Result<(), Invalid> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_META_KEY
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !key_ok {
        return Err(Invalid::MetaKey);
    }
    if value.len() > MAX_META_VALUE {
        return Err(Invalid::MetaValue);
    }
    match key {
        META_REGION => label(value),
        META_DNS_TTL => dns_ttl(value).map(drop),
        META_DNS_ANSWER_LIMIT => answer_limit(value).map(drop),
        _ => Ok(()),
    }
}

/// What an instance's `Meta` says to signpost: its region and its service's DNS settings.
/// Errors name the key. Call after `meta_entry` accepted every pair.
pub fn meta_settings(
    meta: &BTreeMap<String, String>,
) -> Result<(Option<String>, ServicePolicy), (&'static str, Invalid)> {
    let mut policy = ServicePolicy::default();
    let region = match meta.get(META_REGION) {
        Some(r) => {
            label(r).map_err(|e| (META_REGION, e))?;
            Some(r.clone())
        }
        None => None,
    };
    if let Some(t) = meta.get(META_DNS_TTL) {
        policy.ttl = Some(dns_ttl(t).map_err(|e| (META_DNS_TTL, e))?);
    }
    if let Some(l) = meta.get(META_DNS_ANSWER_LIMIT) {
        policy.answer_limit = Some(answer_limit(l).map_err(|e| (META_DNS_ANSWER_LIMIT, e))?);
    }
    Ok((region, policy))
}

/// A service's DNS TTL: a duration of whole seconds (a fraction above 1 s is dropped), 0 (no
/// caching) or at least 1 s and at most `MAX_TTL`. `"500ms"` is refused rather than answered as
/// 0, which would quietly turn caching off.
pub fn dns_ttl(text: &str) -> Result<Duration, Invalid> {
    let d = duration::parse(text)?;
    if !d.is_zero() && d < Duration::from_secs(1) {
        return Err(Invalid::SubSecondTtl(text.to_string()));
    }
    if d > MAX_TTL {
        return Err(Invalid::LongTtl(text.to_string()));
    }
    Ok(Duration::from_secs(d.as_secs()))
}

/// A service's A/AAAA answer limit, written as a number (`"2"`); 0 = no limit.
pub fn answer_limit(text: &str) -> Result<u32, Invalid> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    text.parse::<u32>().ok().filter(|_| digits).ok_or_else(|| Invalid::Number(text.to_string()))
}

/// A probe interval, a timeout or a TTL: a duration above 0.
pub fn positive(d: Duration) -> Result<Duration, Invalid> {
    if d.is_zero() { Err(Invalid::NotPositive) } else { Ok(d) }
}

/// An HTTP check's method: an HTTP token, sent uppercase (`post` is `POST`); empty is `GET`.
pub fn http_method(text: &str) -> Result<String, Invalid> {
    if text.is_empty() {
        return Ok("GET".into());
    }
    if !text.bytes().all(is_token_byte) {
        return Err(Invalid::Method(text.to_string()));
    }
    Ok(text.to_ascii_uppercase())
}

/// An HTTP check's header name: an HTTP token (RFC 9110).
pub fn header_name(name: &str) -> Result<(), Invalid> {
    if !name.is_empty() && name.bytes().all(is_token_byte) {
        Ok(())
    } else {
        Err(Invalid::HeaderName(name.to_string()))
    }
}

/// An HTTP check's header value: no control characters but tab (RFC 9110 `field-value`).
pub fn header_value(value: &str) -> Result<(), Invalid> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Invalid::HeaderValue(value.to_string()));
    }
    Ok(())
}

/// Returns true if `b` may appear in an HTTP token: a method or a header name (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An HTTP check's URL: `http://` or `https://` with a host.
pub fn http_url(url: &str) -> Result<(), Invalid> {
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(()),
        _ => Err(Invalid::Url(url.to_string())),
    }
}

/// A TCP check's target: `host:port` or `[v6]:port`.
pub fn tcp_target(target: &str) -> Result<(), Invalid> {
    let split = match target.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => target.rsplit_once(':').filter(|(host, _)| !host.contains(':')),
    };
    match split {
        Some((host, port))
            if !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok() =>
        {
            Ok(())
        }
        _ => Err(Invalid::TcpTarget(target.to_string())),
    }
}

#[cfg(test)]
mod tests;
