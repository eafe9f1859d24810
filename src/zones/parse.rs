//! Zone files: the operator-owned, read-only declarations of services and their instances.
//!
//! Parsing goes through toml's spanned document tree rather than one `from_str` call, so that
//! every service, instance and check is deserialized on its own: one bad instance does not hide
//! the errors of the next, and every error can point at the key or value it is about. What makes
//! a value valid is the model's (`model::rules`, shared with the API and the command line).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::duration;
use crate::model::rules::{self, Invalid};
use crate::model::{
    Address, CheckKind, CheckSpec, Instance, ParsedInstance, ServicePolicy, Source, WhenNoneHealthy, ZoneError,
    ZoneFile,
};

/// Parses and validates one file's text. Collects every validation error it can (not just the
/// first); a TOML syntax error is one error at its position.
pub fn parse(path: &Path, text: &str) -> Result<ZoneFile, Vec<ZoneError>> {
    let mut cx = Cx { path, lines: Lines::new(text), errors: Vec::new(), instances: Vec::new(), ids: HashMap::new() };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            cx.err(e.span().map_or(0, |s| s.start), e.message());
            return Err(cx.errors);
        }
    };
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let _: Option<RawFile> = cx.de(&root);
    for service in items(&root, "service") {
        cx.service(service);
    }
    if cx.errors.is_empty() {
        Ok(ZoneFile { path: path.to_path_buf(), instances: cx.instances })
    } else {
        // Fields are visited in key order, not file order; readers expect the file's order.
        cx.errors.sort_by_key(|e| (e.line, e.col));
        Err(cx.errors)
    }
}

/// Helper other modules may use: byte offset -> (line, col), 1-based.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).line_col(offset)
}

/// Where each line of a text starts, so that every instance's line:col is a lookup: counting
/// from the start of the file for each one made loading quadratic in the file's size (a
/// 3,000-instance file took 4.4 billion instructions, 90% of a server's start).
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset, clamped to the text.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}

// The raw shapes exist for serde's type and unknown-key checks. `check` and `instance` are only
// type-checked here (`IgnoredAny`) and deserialized separately, so their errors stay independent.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a zone file")]
struct RawFile {
    #[serde(rename = "service")]
    _service: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service]] table")]
struct RawService {
    name: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    region: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    answer_limit: Option<Spanned<i64>>,
    only_passing: Option<bool>,
    when_none_healthy: Option<Spanned<String>>,
    #[serde(rename = "check")]
    _check: Option<IgnoredAny>,
    #[serde(rename = "instance")]
    _instance: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service.instance]] table")]
struct RawInstance {
    id: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    region: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    meta: Option<Spanned<BTreeMap<Spanned<String>, String>>>,
    #[serde(rename = "check")]
    _check: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a check table")]
struct RawCheck {
    http: Option<Spanned<String>>,
    tcp: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    deregister_after: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    header: Option<Spanned<BTreeMap<Spanned<String>, Vec<String>>>>,
    tls_skip_verify: Option<Spanned<bool>>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a service block gives each of its instances.
#[derive(Default)]
struct ServiceDefaults {
    name: String,
    tags: Vec<String>,
    region: Option<String>,
    policy: ServicePolicy,
}

/// Expands `{address}` and `{port}`; `Err(offset)` locates an unknown placeholder. In a URL's
/// host and in a tcp target an IPv6 address gets the brackets it needs there.
fn expand(template: &str, is_url: bool, address: &Address, port: u16) -> Result<String, usize> {
    let host = if is_url {
        let start = template.find("://").map_or(0, |i| i + 3);
        start..template[start..].find(['/', '?', '#']).map_or(template.len(), |i| start + i)
    } else {
        0..template.len()
    };
    let mut out = String::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find('{').map(|i| rest + i) {
        let Some(close) = template[open..].find('}').map(|i| open + i) else { break };
        out.push_str(&template[rest..open]);
        rest = close + 1;
        match &template[open + 1..close] {
            "port" => out.push_str(&port.to_string()),
            "address" => {
                let in_host = host.contains(&open);
                // Hand-written brackets would double for IPv6 and be wrong for anything else.
                if in_host && out.ends_with('[') && template[rest..].starts_with(']') {
                    out.pop();
                    rest += 1;
                }
                match address {
                    Address::Ip(IpAddr::V6(ip)) if in_host => out.push_str(&format!("[{ip}]")),
                    _ => out.push_str(&address.to_string()),
                }
            }
            _ => return Err(open),
        }
    }
    out.push_str(&template[rest..]);
    Ok(out)
}

/// The `[[name]]` array under `key` of a table value; a wrong type was already reported by serde.
fn items<'a, 'i>(table: &'a Spanned<DeValue<'i>>, key: &str) -> &'a [Spanned<DeValue<'i>>] {
    match table.get_ref().get(key).map(Spanned::get_ref) {
        Some(DeValue::Array(array)) => array,
        _ => &[],
    }
}

struct Cx<'a> {
    path: &'a Path,
    lines: Lines<'a>,
    errors: Vec<ZoneError>,
    instances: Vec<ParsedInstance>,
    /// Instance id -> line of its first declaration.
    ids: HashMap<String, usize>,
}

impl Cx<'_> {
    fn err(&mut self, offset: usize, message: impl Into<String>) {
        let (line, col) = self.lines.line_col(offset);
        let path = self.path.to_path_buf();
        self.errors.push(ZoneError { path, line, col, message: message.into() });
    }

    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'_>>) -> Option<T> {
        T::deserialize(ValueDeserializer::from(value.clone()))
            .map_err(|e| self.err(e.span().unwrap_or(value.span()).start, e.message()))
            .ok()
    }

    /// Offset of byte `index` of a string value, exact when the value was written without
    /// escapes, else the value's start.
    fn offset_in(&self, value: &Spanned<String>, index: usize) -> usize {
        let span = value.span();
        let written = self.lines.text.get(span.start + 1..span.end.saturating_sub(1));
        if written == Some(value.get_ref().as_str()) { span.start + 1 + index } else { span.start }
    }

    /// A value that breaks a rule of the model, as `field: rule` at `offset`.
    fn invalid(&mut self, offset: usize, field: &str, e: Invalid) {
        self.err(offset, format!("{field}: {e}"));
    }

    /// The value of a rule's verdict; `None` (and the error recorded at `offset`) if it failed.
    fn rule<T>(&mut self, offset: usize, field: &str, verdict: Result<T, Invalid>) -> Option<T> {
        verdict.map_err(|e| self.invalid(offset, field, e)).ok()
    }

    fn label(&mut self, field: &str, value: &Spanned<String>) -> Option<String> {
        let v = value.get_ref();
        self.rule(value.span().start, field, rules::label(v)).map(|()| v.clone())
    }

    fn duration(&mut self, field: &str, value: &Spanned<String>) -> Option<Duration> {
        duration::parse(value.get_ref()).map_err(|e| self.err(value.span().start, format!("{field}: {e}"))).ok()
    }

    fn positive_duration(&mut self, field: &str, value: &Spanned<String>) -> Option<Duration> {
        let d = self.duration(field, value)?;
        self.rule(value.span().start, field, rules::positive(d))
    }

    fn int(&mut self, field: &str, value: &Spanned<i64>, min: i64, max: i64) -> Option<i64> {
        let v = *value.get_ref();
        if (min..=max).contains(&v) {
            return Some(v);
        }
        // Bounds that only guard the u32 conversion are not worth quoting for a too-small value.
        let rule = if max == i64::from(u32::MAX) && v < min {
            format!("at least {min}")
        } else {
            format!("between {min} and {max}")
        };
        self.err(value.span().start, format!("{field} must be {rule}, got {v}"));
        None
    }

    fn required<T>(&mut self, field: &str, value: Option<T>, table_start: usize) -> Option<T> {
        if value.is_none() {
            self.err(table_start, format!("missing field `{field}`"));
        }
        value
    }

    fn tags(&mut self, into: &mut Vec<String>, tags: &[Spanned<String>]) {
        for tag in tags {
            if self.rule(tag.span().start, "tag", rules::tag(tag.get_ref())).is_some() && !into.contains(tag.get_ref())
            {
                into.push(tag.get_ref().clone());
            }
        }
    }

    fn service(&mut self, value: &Spanned<DeValue<'_>>) {
        let check = value.get_ref().get("check").map(|c| self.check(c));
        // A broken service block still gets its instances checked, against empty defaults.
        let defaults = match self.de::<RawService>(value) {
            Some(raw) => self.service_defaults(raw, value.span().start),
            None => ServiceDefaults::default(),
        };
        let check = check.flatten();
        for instance in items(value, "instance") {
            self.instance(instance, &defaults, check.as_ref());
        }
    }

    fn service_defaults(&mut self, raw: RawService, start: usize) -> ServiceDefaults {
        let mut d = ServiceDefaults::default();
        if let Some(name) = self.required("name", raw.name, start) {
            d.name = self.label("name", &name).unwrap_or_default();
        }
        self.tags(&mut d.tags, &raw.tags);
        d.region = raw.region.and_then(|r| self.label("region", &r));
        if let Some(ttl) = raw.ttl {
            d.policy.ttl = self.rule(ttl.span().start, "ttl", rules::dns_ttl(ttl.get_ref()));
        }
        d.policy.answer_limit =
            raw.answer_limit.and_then(|l| self.int("answer_limit", &l, 0, u32::MAX.into())).map(|l| l as u32);
        d.policy.only_passing = raw.only_passing;
        if let Some(w) = raw.when_none_healthy {
            d.policy.when_none_healthy = match w.get_ref().as_str() {
                "empty" => Some(WhenNoneHealthy::Empty),
                "all" => Some(WhenNoneHealthy::All),
                other => {
                    let msg = format!("when_none_healthy must be \"empty\" or \"all\", got {other:?}");
                    self.err(w.span().start, msg);
                    None
                }
            };
        }
        d
    }

    fn instance(&mut self, value: &Spanned<DeValue<'_>>, service: &ServiceDefaults, service_check: Option<&CheckSpec>) {
        let own_check = value.get_ref().get("check").map(|c| self.check(c));
        let Some(raw) = self.de::<RawInstance>(value) else { return };
        let start = value.span().start;
        let id = self.required("id", raw.id, start);
        let address = self.required("address", raw.address, start);
        let port = self.required("port", raw.port, start);

        let (line, col) = id.as_ref().map_or((0, 0), |id| self.lines.line_col(id.span().start));
        if let Some(id) = &id {
            self.label("id", id);
            if let Some(first) = self.ids.get(id.get_ref()) {
                let msg = format!("duplicate instance id {:?} (first declared on line {first})", id.get_ref());
                self.err(id.span().start, msg);
            } else {
                self.ids.insert(id.get_ref().clone(), line);
            }
        }
        let address = address.and_then(|a| self.rule(a.span().start, "address", Address::parse(a.get_ref())));
        let port = port.and_then(|p| self.int("port", &p, 0, 65535)).map(|p| p as u16);
        let mut tags = service.tags.clone();
        self.tags(&mut tags, &raw.tags);
        let meta = raw.meta.map(|m| self.meta(m)).unwrap_or_default();
        // Its keys were checked one by one above, each error at its key; this is what they mean.
        let (meta_region, meta_policy) = rules::meta_settings(&meta).unwrap_or_default();
        let region = match raw.region {
            Some(r) => self.label("region", &r),
            None => meta_region.or_else(|| service.region.clone()),
        };
        let weight = match raw.weight {
            Some(w) => self.int("weight", &w, 1, 65535).unwrap_or(1) as u32,
            None => 1,
        };
        let check = match &own_check {
            Some(own) => own.as_ref(),
            None => service_check,
        };
        let (Some(id), Some(address), Some(port)) = (id, address, port) else { return };
        let id = id.into_inner();
        let checks = check
            .map(|c| {
                let mut c = c.clone();
                c.id = format!("service:{id}");
                c.name = format!("Service '{}' check", service.name);
                match &mut c.kind {
                    CheckKind::Http { url, .. } => *url = expand(url, true, &address, port).unwrap_or_default(),
                    CheckKind::Tcp { target } => *target = expand(target, false, &address, port).unwrap_or_default(),
                    CheckKind::Ttl { .. } | CheckKind::External => {}
                }
                c
            })
            .into_iter()
            .collect();
        let instance = Instance {
            id,
            service: service.name.clone(),
            address,
            port,
            tags,
            weight,
            region: region.map(Into::into),
            meta: meta.into(),
            checks,
            policy: service.policy.merge(meta_policy).into(),
            source: Source::Zone(self.path.to_path_buf()),
            node: None,
        };
        self.instances.push(ParsedInstance { instance, line, col });
    }

    fn meta(&mut self, meta: Spanned<BTreeMap<Spanned<String>, String>>) -> BTreeMap<String, String> {
        if let Err(e) = rules::meta_count(meta.get_ref().len()) {
            self.invalid(meta.span().start, "meta", e);
        }
        let mut out = BTreeMap::new();
        for (key, value) in meta.into_inner() {
            if let Err(e) = rules::meta_entry(key.get_ref(), &value) {
                self.invalid(key.span().start, &format!("meta.{}", key.get_ref().escape_debug()), e);
            }
            out.insert(key.into_inner(), value);
        }
        out
    }

    /// The check with `{address}`/`{port}` unexpanded and no id or name yet; `None` (and errors
    /// recorded) when it is invalid.
    fn check(&mut self, value: &Spanned<DeValue<'_>>) -> Option<CheckSpec> {
        let raw: RawCheck = self.de(value)?;
        let before = self.errors.len();
        let mut kinds: Vec<(&str, usize)> = [("http", &raw.http), ("tcp", &raw.tcp), ("ttl", &raw.ttl)]
            .into_iter()
            .filter_map(|(name, v)| Some((name, v.as_ref()?.span().start)))
            .collect();
        kinds.sort_by_key(|&(_, at)| at);
        match kinds.as_slice() {
            [] => self.err(value.span().start, "check needs one of `http`, `tcp` or `ttl`"),
            [_] => {}
            [_, (_, second), ..] => {
                let names: Vec<String> = kinds.iter().map(|(n, _)| format!("`{n}`")).collect();
                let msg = format!("check may have only one of `http`, `tcp` or `ttl`, found {}", names.join(" and "));
                self.err(*second, msg);
            }
        }
        let is_http = raw.http.is_some();
        for (field, at) in [
            ("method", raw.method.as_ref().map(|v| v.span().start)),
            ("header", raw.header.as_ref().map(|v| v.span().start)),
            ("tls_skip_verify", raw.tls_skip_verify.as_ref().map(|v| v.span().start)),
        ] {
            if let Some(at) = at
                && !is_http
            {
                self.err(at, format!("`{field}` applies only to http checks"));
            }
        }
        if let (Some(t), Some(_)) = (&raw.timeout, &raw.ttl) {
            self.err(t.span().start, "`timeout` applies only to http and tcp checks");
        }
        let interval = raw.interval.and_then(|v| self.positive_duration("interval", &v));
        let timeout = raw.timeout.and_then(|v| self.positive_duration("timeout", &v));
        let rise = raw.rise.and_then(|v| self.int("rise", &v, 1, u32::MAX.into()));
        let fall = raw.fall.and_then(|v| self.int("fall", &v, 1, u32::MAX.into()));
        let deregister_after = raw.deregister_after.and_then(|v| self.duration("deregister_after", &v));
        let method = match raw.method {
            Some(m) => self.rule(m.span().start, "method", rules::http_method(m.get_ref())).unwrap_or_default(),
            None => "GET".to_string(),
        };
        let mut headers = BTreeMap::new();
        for (name, values) in raw.header.map(Spanned::into_inner).unwrap_or_default() {
            let at = name.span().start;
            self.rule(at, "header", rules::header_name(name.get_ref()));
            for v in &values {
                self.rule(at, &format!("header.{}", name.get_ref().escape_debug()), rules::header_value(v));
            }
            headers.insert(name.into_inner(), values);
        }
        let kind = if let Some(url) = raw.http {
            self.template("http", &url, true)?;
            let tls_skip_verify = raw.tls_skip_verify.is_some_and(|v| *v.get_ref());
            CheckKind::Http { url: url.into_inner(), method, headers, tls_skip_verify }
        } else if let Some(target) = raw.tcp {
            self.template("tcp", &target, false)?;
            CheckKind::Tcp { target: target.into_inner() }
        } else {
            CheckKind::Ttl { ttl: self.positive_duration("ttl", raw.ttl.as_ref()?)? }
        };
        (self.errors.len() == before).then_some(CheckSpec {
            id: String::new(),
            name: String::new(),
            kind,
            interval: interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            rise: rise.map(|v| v as u32),
            fall: fall.map(|v| v as u32),
            deregister_after,
            initial: None,
        })
    }

    /// Checks an http URL or tcp target, with stand-ins for its placeholders.
    fn template(&mut self, field: &str, value: &Spanned<String>, is_url: bool) -> Option<()> {
        let s = value.get_ref();
        match expand(s, is_url, &Address::Host("host".into()), 1) {
            Err(open) => {
                let name = &s[open..=open + s[open..].find('}').unwrap_or(0)];
                let msg = format!(
                    "unknown placeholder `{name}` in check {field}; only {{address}} and {{port}} are expanded"
                );
                self.err(self.offset_in(value, open), msg);
                None
            }
            // The written template is what is wrong, not its stand-in expansion.
            Ok(sample) if is_url => {
                let verdict = rules::http_url(&sample).map_err(|_| Invalid::Url(s.clone()));
                self.rule(value.span().start, "check http", verdict)
            }
            Ok(sample) => {
                let verdict = rules::tcp_target(&sample).map_err(|_| Invalid::TcpTarget(s.clone()));
                self.rule(value.span().start, "check tcp", verdict)
            }
        }
    }
}

#[cfg(test)]
mod tests;
