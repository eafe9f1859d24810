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
    let mut cx = Cx { path, text, errors: Vec::new(), instances: Vec::new(), ids: HashMap::new() };
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
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
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
    text: &'a str,
    errors: Vec<ZoneError>,
    instances: Vec<ParsedInstance>,
    /// Instance id -> line of its first declaration.
    ids: HashMap<String, usize>,
}

impl Cx<'_> {
    fn err(&mut self, offset: usize, message: impl Into<String>) {
        let (line, col) = line_col(self.text, offset);
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
        let written = self.text.get(span.start + 1..span.end.saturating_sub(1));
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

        let (line, col) = id.as_ref().map_or((0, 0), |id| line_col(self.text, id.span().start));
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
                    CheckKind::Ttl { .. } => {}
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
            region,
            meta: meta.into(),
            checks,
            policy: service.policy.merge(meta_policy),
            source: Source::Zone(self.path.to_path_buf()),
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
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const EXAMPLE: &str = r#"
[[service]]
name = "payment-service"
tags = ["v2"]                 # given to every instance below
region = "us-east-1"          # default region of its instances
ttl = "5s"                    # optional DNS TTL for this service
check = { http = "http://{address}:{port}/health", interval = "10s", timeout = "5s" }

[[service.instance]]
id = "payment-1"
address = "192.168.1.20"
port = 8002
weight = 3
meta = { version = "2.1.0" }

[[service.instance]]
id = "payment-2"
address = "192.168.1.21"
port = 8002
check = { tcp = "192.168.1.21:8002", interval = "5s" }   # instance check replaces the service's
"#;

    fn zone(text: &str) -> Result<ZoneFile, Vec<ZoneError>> {
        parse(Path::new("z.toml"), text)
    }

    const OK_INSTANCE: &str = "id = \"a-1\"\naddress = \"10.0.0.1\"\nport = 80";

    fn check_spec(id: &str, kind: CheckKind, interval: u64) -> CheckSpec {
        CheckSpec {
            id: format!("service:{id}"),
            name: "Service 'payment-service' check".into(),
            kind,
            interval: Duration::from_secs(interval),
            timeout: Duration::from_secs(5),
            rise: None,
            fall: None,
            deregister_after: None,
            initial: None,
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let file = zone(EXAMPLE).unwrap();
        let policy = ServicePolicy { ttl: Some(Duration::from_secs(5)), ..Default::default() };
        let base = Instance {
            id: "payment-1".into(),
            service: "payment-service".into(),
            address: Address::Ip(Ipv4Addr::new(192, 168, 1, 20).into()),
            port: 8002,
            tags: vec!["v2".into()],
            weight: 3,
            region: Some("us-east-1".into()),
            meta: [("version".into(), "2.1.0".into())].into(),
            checks: vec![check_spec(
                "payment-1",
                CheckKind::Http {
                    url: "http://192.168.1.20:8002/health".into(),
                    method: "GET".into(),
                    headers: BTreeMap::new(),
                    tls_skip_verify: false,
                },
                10,
            )],
            policy,
            source: Source::Zone("z.toml".into()),
        };
        let second = Instance {
            id: "payment-2".into(),
            address: Address::Ip(Ipv4Addr::new(192, 168, 1, 21).into()),
            weight: 1,
            meta: Default::default(),
            checks: vec![check_spec("payment-2", CheckKind::Tcp { target: "192.168.1.21:8002".into() }, 5)],
            ..base.clone()
        };
        let want = vec![
            ParsedInstance { instance: base, line: 10, col: 6 },
            ParsedInstance { instance: second, line: 17, col: 6 },
        ];
        assert_eq!(file, ZoneFile { path: "z.toml".into(), instances: want });
    }

    #[test]
    fn instances_combine_with_their_service() {
        let text = r#"
            [[service]]
            name = "web"
            tags = ["a", "b"]
            region = "eu"
            ttl = "1500ms"
            answer_limit = 3
            only_passing = true
            when_none_healthy = "all"
            check = { tcp = "{address}:{port}", rise = 2, fall = 3, deregister_after = "1m" }
            [[service.instance]]
            id = "web-1"
            address = "::1"
            port = 80
            tags = ["b", "c", "a"]
            region = "us"
            [[service.instance]]
            id = "web-2"
            address = "Web-2.Example.COM"
            port = 81
            check = { http = "https://[{address}]:{port}/h?for={address}", method = "HEAD", header = { X-Probe = ["1"] }, tls_skip_verify = true }
        "#;
        let file = zone(text).unwrap();
        let [one, two] = file.instances.as_slice() else { panic!("{file:#?}") };
        let (one, two) = (&one.instance, &two.instance);
        assert_eq!(one.tags, ["a", "b", "c"]);
        assert_eq!((one.region.as_deref(), two.region.as_deref()), (Some("us"), Some("eu")));
        assert_eq!(one.address, Address::Ip("::1".parse().unwrap()));
        assert_eq!(two.address, Address::Host("web-2.example.com".into()));
        assert_eq!(
            one.policy,
            ServicePolicy {
                ttl: Some(Duration::from_secs(1)),
                answer_limit: Some(3),
                only_passing: Some(true),
                when_none_healthy: Some(WhenNoneHealthy::All),
            }
        );
        let c = &one.checks[0];
        assert_eq!(c.kind, CheckKind::Tcp { target: "[::1]:80".into() });
        assert_eq!((c.rise, c.fall, c.deregister_after), (Some(2), Some(3), Some(Duration::from_secs(60))));
        assert_eq!((c.interval, c.timeout), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT));
        assert_eq!(
            two.checks[0].kind,
            CheckKind::Http {
                url: "https://web-2.example.com:81/h?for=web-2.example.com".into(),
                method: "HEAD".into(),
                headers: BTreeMap::from([("X-Probe".into(), vec!["1".into()])]),
                tls_skip_verify: true,
            }
        );
    }

    #[test]
    fn meta_region_and_dns_settings_mean_what_they_mean_in_the_api() {
        let text = r#"
            [[service]]
            name = "web"
            region = "eu"
            ttl = "30s"
            answer_limit = 0
            [[service.instance]]
            id = "web-1"
            address = "10.0.0.1"
            port = 80
            meta = { region = "us", dns-ttl = "10s", dns-answer-limit = "2" }
            [[service.instance]]
            id = "web-2"
            address = "10.0.0.2"
            port = 80
            region = "ap"
            meta = { region = "us", dns-ttl = "1m" }
        "#;
        let file = zone(text).unwrap();
        let [one, two] = file.instances.as_slice() else { panic!("{file:#?}") };
        let (one, two) = (&one.instance, &two.instance);
        // An instance's own key beats its meta, which beats its service's.
        assert_eq!((one.region.as_deref(), two.region.as_deref()), (Some("us"), Some("ap")));
        // Meta settings merge with the service's like two declarations: the smallest wins.
        assert_eq!((one.policy.ttl, one.policy.answer_limit), (Some(Duration::from_secs(10)), Some(2)));
        assert_eq!((two.policy.ttl, two.policy.answer_limit), (Some(Duration::from_secs(30)), Some(0)));
        assert_eq!(one.meta["dns-ttl"], "10s", "and they stay meta, as in the API");
    }

    #[test]
    fn ipv6_is_bracketed_only_in_host_position() {
        let text = inst(
            "id = \"a-1\"\naddress = \"fe80::1\"\nport = 80\ncheck = { http = \"http://{address}/?ip={address}\" }",
        );
        let file = zone(&text).unwrap();
        let CheckKind::Http { url, .. } = &file.instances[0].instance.checks[0].kind else { panic!() };
        assert_eq!(url, "http://[fe80::1]/?ip=fe80::1");
    }

    #[test]
    fn empty_and_instance_less_files_are_valid() {
        for text in ["", "# nothing yet\n", "[[service]]\nname = \"a\"\n"] {
            assert_eq!(zone(text).unwrap().instances, [], "{text:?}");
        }
    }

    /// A service `a` with `line3` as its third line.
    fn svc(line3: &str) -> String {
        format!("[[service]]\nname = \"a\"\n{line3}\n")
    }

    /// A service `a` whose one instance has `fields`; the first field is on line 4.
    fn inst(fields: &str) -> String {
        svc(&format!("[[service.instance]]\n{fields}"))
    }

    /// `OK_INSTANCE` plus `line7` as the instance's seventh line.
    fn inst7(line7: &str) -> String {
        inst(&format!("{OK_INSTANCE}\n{line7}"))
    }

    fn addr(address: &str) -> String {
        inst(&format!("id = \"a-1\"\naddress = {address:?}\nport = 80"))
    }

    #[test]
    fn errors_point_at_the_offending_key_or_value() {
        let meta_65: String = (0..65).map(|i| format!("k{i} = \"v\", ")).collect();
        #[rustfmt::skip]
        let cases = [
            ("colour = 1\n".into(), 1, 1, "unknown field `colour`, expected `service`"),
            (svc("colour = 1"), 3, 1, "unknown field `colour`"),
            (inst7("colour = 1"), 7, 1, "unknown field `colour`"),
            (svc("check = { tcp = \"x:1\", colour = 1 }"), 3, 24, "unknown field `colour`"),
            ("[[service]]\ntags = []\n".into(), 1, 1, "missing field `name`"),
            (addr("300.1.1.1"), 5, 11, "address: \"300.1.1.1\" is neither an IP address nor a host name"),
            (addr("0.0.0.0"), 5, 11, "address: \"0.0.0.0\" is not an address clients can reach"),
            (addr("::"), 5, 11, "address: \"::\" is not an address clients can reach"),
            (addr(""), 5, 11, "address: must not be empty"),
            (addr("bad_host!"), 5, 11, "address: \"bad_host!\" is neither"),
            (addr(&format!("{}.com", "a".repeat(64))), 5, 11, "is neither"),
            (inst("id = \"a-1\"\naddress = \"10.0.0.1\"\nport = 70000"), 6, 8, "port must be between 0 and 65535, got 70000"),
            (inst("id = \"a-1\"\naddress = \"10.0.0.1\"\nport = \"80\""), 6, 8, "invalid type: string \"80\""),
            (inst7("weight = 0"), 7, 10, "weight must be between 1 and 65535, got 0"),
            (inst("id = \"a b\"\naddress = \"10.0.0.1\"\nport = 80"), 4, 6, "id: \"a b\" must be 1-63 characters"),
            (inst7(&format!("[[service.instance]]\n{OK_INSTANCE}")), 8, 6, "duplicate instance id \"a-1\" (first declared on line 4)"),
            (inst7("tags = [\"ok\", \"\"]"), 7, 15, "tag: must not be empty"),
            (inst7("region = \"us east\""), 7, 10, "region: \"us east\" must be 1-63 characters"),
            (inst7(&format!("meta = {{ {meta_65}}}")), 7, 8, "meta: has 65 keys; at most 64 are allowed"),
            (inst7("meta = { \"\" = \"x\" }"), 7, 10, "meta.: keys must be 1-128 characters of A-Z a-z 0-9 _ -"),
            (inst7("meta = { \"a.b\" = \"x\" }"), 7, 10, "meta.a.b: keys must be 1-128 characters"),
            (inst7(&format!("meta = {{ {} = \"x\" }}", "k".repeat(129))), 7, 10, "keys must be 1-128 characters"),
            (inst7(&format!("meta = {{ k = \"{}\" }}", "v".repeat(513))), 7, 10, "meta.k: is longer than 512 bytes"),
            (inst7("meta = { dns-ttl = \"500ms\" }"), 7, 10, "meta.dns-ttl: \"500ms\" must be 0 or at least 1s"),
            (inst7("meta = { region = \"us east\" }"), 7, 10, "meta.region: \"us east\" must be 1-63 characters"),
            (inst7("meta = { k = 1 }"), 7, 14, "invalid type: integer `1`, expected a string"),
            (svc("ttl = \"10\""), 3, 7, "ttl: invalid duration \"10\": missing unit"),
            (svc("ttl = \"500ms\""), 3, 7, "ttl: \"500ms\" must be 0 or at least 1s"),
            (svc("answer_limit = -1"), 3, 16, "answer_limit must be at least 0, got -1"),
            (svc("answer_limit = 5000000000"), 3, 16, "between 0 and 4294967295"),
            (svc("when_none_healthy = \"some\""), 3, 21, "when_none_healthy must be \"empty\" or \"all\""),
            (svc("check = { ttl = \"30s\", interval = \"5x\" }"), 3, 35, "interval: invalid duration \"5x\": unknown unit"),
            (svc("check = { tcp = \"x:1\", timeout = \"0\" }"), 3, 34, "timeout: must be greater than 0"),
            (svc("check = { http = \"http://x/\", tcp = \"x:1\" }"), 3, 37, "found `http` and `tcp`"),
            (svc("check = { interval = \"5s\" }"), 3, 9, "check needs one of `http`, `tcp` or `ttl`"),
            (svc("check = { http = \"http://{host}/\" }"), 3, 26, "unknown placeholder `{host}` in check http"),
            (svc("check = { http = \"ftp://x/\" }"), 3, 18, "check http: \"ftp://x/\" is not an http:// or https:// URL"),
            (svc("check = { tcp = \"x\" }"), 3, 17, "check tcp: \"x\" is not host:port"),
            (svc("check = { tcp = \"x:1\", method = \"GET\" }"), 3, 33, "`method` applies only to http checks"),
            (svc("check = { http = \"http://x/\", method = \"GE T\" }"), 3, 40, "method: \"GE T\" is not an HTTP method"),
            (svc("check = { http = \"http://x/\", header = { \"A B\" = [] } }"), 3, 42, "header: \"A B\" is not a valid HTTP header name"),
            (svc("check = { http = \"http://x/\", header = { A = [\"1\\n\"] } }"), 3, 42, "header.A: \"1\\n\" has a control character"),
            (svc("check = { ttl = \"30s\", timeout = \"1s\" }"), 3, 34, "`timeout` applies only to http and tcp checks"),
            (svc("check = { ttl = \"30s\", rise = 0 }"), 3, 31, "rise must be at least 1, got 0"),
            (svc("[service.check]\ntcp = \"x:1\"\nhttp = \"https://x/\""), 5, 8, "found `tcp` and `http`"),
            (svc("name = \"b\""), 3, 1, "duplicate key"),
            ("[service]\nname = \"a\"\n".into(), 1, 1, "invalid type"),
        ];
        for (text, line, col, msg) in cases {
            let got = zone(&text).expect_err(&text);
            let view: Vec<String> = got.iter().map(ToString::to_string).collect();
            assert_eq!(got.len(), 1, "{text}\n{view:#?}");
            assert_eq!((got[0].line, got[0].col), (line, col), "{text}\n{view:#?}");
            assert!(got[0].message.contains(msg), "{text}\nwant {msg:?} in {view:#?}");
        }
    }

    #[test]
    fn missing_instance_fields_are_all_reported_at_the_table() {
        let got: Vec<_> = zone(&inst("weight = 2")).unwrap_err().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "z.toml:3:1: missing field `id`",
                "z.toml:3:1: missing field `address`",
                "z.toml:3:1: missing field `port`"
            ]
        );
    }

    #[test]
    fn every_error_is_reported_in_file_order() {
        let text = "[[service]]\nname = \"a\"\ncolour = 1\n[[service.instance]]\n\
                    id = \"a-1\"\naddress = \"300.1.1.1\"\nport = 70000\nweight = 0\n\
                    check = { http = \"http://{host}/\" }\n";
        let got: Vec<String> = zone(text).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        for (e, prefix) in
            got.iter().zip(["z.toml:3:1: ", "z.toml:6:11: ", "z.toml:7:8: ", "z.toml:8:10: ", "z.toml:9:26: "])
        {
            assert!(e.starts_with(prefix), "{e} should start with {prefix}");
        }
    }

    #[test]
    fn line_col_counts_chars() {
        let text = "a\nµé = 1\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
