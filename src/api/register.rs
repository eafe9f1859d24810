//! Registration bodies: Consul's `AgentServiceRegistration` JSON → a validated `model::Instance`.
//!
//! Clients spell keys differently (node-consul and Go send `Name`, `ID`, `Checks`; py-consul sends
//! `name`, `id`, `checks`, `deregister_critical_service_after`), so keys are matched after
//! lowercasing and dropping `_`, and unknown keys are ignored, as Consul does. What makes a value
//! valid is the model's (`model::rules`, shared with zone files and the command line); every
//! error names the field the way Consul's documentation spells it (`Checks[1].Interval`) and the
//! rule broken.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use crate::model::rules::{self, Invalid};
use crate::model::{Address, CheckKind, CheckSpec, Instance, Source, Status};
/// An HTTP/TCP check's timeout when the body gives none (the zone files' default too).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest output text kept per check update (Consul keeps 4 KiB too): it is stored.
pub const MAX_OUTPUT: usize = 4096;

/// A field that breaks a rule; shown as `field: rule`, on one line whatever the client sent
/// (a key is the client's text: its control characters are shown escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", one_line(field), one_line(rule))]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Decodes and validates a registration. `client` is the registering client's address, which
/// an absent or empty `Address` stands for.
pub fn decode(body: &[u8], client: IpAddr) -> Result<Instance, FieldError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value, "")?;
    let name = f.str("Name")?.ok_or_else(|| f.error("Name", "required (the service name)"))?;
    label(&f, "Name", name)?;
    let id = f.str("ID")?.filter(|s| !s.is_empty()).unwrap_or(name);
    label(&f, "ID", id)?;
    let address = address(&f, client)?;
    let port = f.uint("Port", 0, u16::MAX.into())?.unwrap_or(0) as u16;
    let tags = tags(&f)?;
    let meta = meta(&f)?;
    let weight = weight(&f)?;
    let (region, policy) = rules::meta_settings(&meta).map_err(|(key, e)| f.invalid(&format!("Meta.{key}"), e))?;
    let checks = checks(&f, id, name)?;
    Ok(Instance {
        id: id.to_string(),
        service: name.to_string(),
        address,
        port,
        tags,
        weight,
        region: region.map(Into::into),
        meta: meta.into(),
        checks,
        policy: policy.into(),
        source: Source::Api,
        node: None,
    })
}

/// A check update body (`PUT /v1/agent/check/update/<id>`): `{"Status": ..., "Output": ...}`.
pub fn decode_check_update(body: &[u8]) -> Result<(Status, String), FieldError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value, "")?;
    let status = f.str("Status")?.ok_or_else(|| f.error("Status", "required (passing, warning or critical)"))?;
    let status = check_status(&f, "Status", status)?;
    Ok((status, clip_output(f.str("Output")?.unwrap_or_default())))
}

/// Cuts check output to `MAX_OUTPUT` bytes at a character boundary.
pub fn clip_output(text: &str) -> String {
    let mut end = text.len().min(MAX_OUTPUT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn parse_json(body: &[u8]) -> Result<Value, FieldError> {
    serde_json::from_slice(body).map_err(|e| FieldError { field: "body".into(), rule: format!("not valid JSON ({e})") })
}

/// A JSON object read Consul's forgiving way: `DeregisterCriticalServiceAfter`,
/// `deregister_critical_service_after` and `deregistercriticalserviceafter` are one key.
struct Fields<'a> {
    map: HashMap<String, &'a Value>,
    /// Where this object sits (`Checks[1]`), to name fields in errors; empty at the top.
    path: String,
}

fn normalise(key: &str) -> String {
    key.chars().filter(|&c| c != '_').flat_map(char::to_lowercase).collect()
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: &str) -> Result<Fields<'a>, FieldError> {
        let Value::Object(obj) = value else {
            let field = if path.is_empty() { "body" } else { path };
            return Err(FieldError { field: field.into(), rule: "must be a JSON object".into() });
        };
        let map = obj.iter().map(|(k, v)| (normalise(k), v)).collect();
        Ok(Fields { map, path: path.to_string() })
    }

    /// The value of a key given in its canonical spelling; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(&normalise(key)).copied().filter(|v| !v.is_null())
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn error(&self, key: &str, rule: impl Into<String>) -> FieldError {
        FieldError { field: self.name(key), rule: rule.into() }
    }

    /// The field `key` breaks a rule of the model.
    fn invalid(&self, key: &str, e: Invalid) -> FieldError {
        self.error(key, e.to_string())
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(key, format!("must be a string, got {other}"))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.error(key, format!("must be true or false, got {other}"))),
        }
    }

    fn uint(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.error(key, format!("must be a whole number from {min} to {max}, got {v}"))),
        }
    }

    /// A Go-style duration string (`"10s"`), as every Consul client sends them.
    fn duration(&self, key: &str) -> Result<Option<Duration>, FieldError> {
        match self.str(key)? {
            None | Some("") => Ok(None),
            Some(s) => crate::duration::parse(s).map(Some).map_err(|e| self.error(key, e.to_string())),
        }
    }

    fn positive_duration(&self, key: &str) -> Result<Option<Duration>, FieldError> {
        self.duration(key)?.map(rules::positive).transpose().map_err(|e| self.invalid(key, e))
    }
}

fn label(f: &Fields, key: &str, value: &str) -> Result<(), FieldError> {
    rules::label(value).map_err(|e| f.invalid(key, e))
}

/// Absent and empty are Consul's "where the registration came from".
fn address(f: &Fields, client: IpAddr) -> Result<Address, FieldError> {
    let text = f.str("Address")?.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Address::Ip(client.to_canonical()));
    }
    Address::parse(text).map_err(|e| f.invalid("Address", e))
}

/// Tags as given, without duplicates.
fn tags(f: &Fields) -> Result<Vec<String>, FieldError> {
    let Some(v) = f.get("Tags") else { return Ok(Vec::new()) };
    let Value::Array(items) = v else { return Err(f.error("Tags", "must be an array of strings")) };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => {
                rules::tag(s).map_err(|e| f.invalid(&format!("Tags[{i}]"), e))?;
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
            other => return Err(f.error(&format!("Tags[{i}]"), format!("must be a string, got {other}"))),
        }
    }
    Ok(out)
}

fn meta(f: &Fields) -> Result<BTreeMap<String, String>, FieldError> {
    meta_at(f, "Meta")
}

/// Metadata under `field` (`Meta`, or a catalog registration's `NodeMeta`).
fn meta_at(f: &Fields, field: &str) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(v) = f.get(field) else { return Ok(BTreeMap::new()) };
    let Value::Object(obj) = v else { return Err(f.error(field, "must be an object of strings")) };
    rules::meta_count(obj.len()).map_err(|e| f.invalid(field, e))?;
    let mut out = BTreeMap::new();
    for (key, value) in obj {
        let name = format!("{field}.{key}");
        let Value::String(s) = value else { return Err(f.error(&name, format!("must be a string, got {value}"))) };
        rules::meta_entry(key, s).map_err(|e| f.invalid(&name, e))?;
        out.insert(key.clone(), s.clone());
    }
    Ok(out)
}

/// The rotation weight: `Weights.Passing`, default 1, at most 65535 (an SRV weight is 16 bits).
/// `Warning` is accepted (0 included, as Go clients send it) and not used.
fn weight(f: &Fields) -> Result<u32, FieldError> {
    let Some(v) = f.get("Weights") else { return Ok(1) };
    let w = Fields::new(v, &f.name("Weights"))?;
    w.uint("Warning", 0, u16::MAX.into())?;
    Ok(w.uint("Passing", 1, u16::MAX.into())?.unwrap_or(1) as u32)
}

/// `Check` and `Checks[]`, in that order. Ids default to `service:<id>`, numbered
/// `service:<id>:<n>` (from 1) when there are several, as Consul numbers them.
fn checks(f: &Fields, id: &str, service: &str) -> Result<Vec<CheckSpec>, FieldError> {
    let raw = raw_checks(f)?;
    let several = raw.len() > 1;
    let mut out: Vec<CheckSpec> = Vec::with_capacity(raw.len());
    for (n, (path, value)) in raw.into_iter().enumerate() {
        let default_id = if several { format!("service:{id}:{}", n + 1) } else { format!("service:{id}") };
        let spec = check(&Fields::new(value, &path)?, default_id, service)?;
        if out.iter().any(|c| c.id == spec.id) {
            return Err(FieldError { field: format!("{path}.CheckID"), rule: format!("{:?} is used twice", spec.id) });
        }
        out.push(spec);
    }
    Ok(out)
}

/// `Check` and `Checks[]` as given, each with where it sits (`Checks[1]`), in that order.
fn raw_checks<'a>(f: &Fields<'a>) -> Result<Vec<(String, &'a Value)>, FieldError> {
    let mut raw: Vec<(String, &Value)> = Vec::new();
    if let Some(c) = f.get("Check") {
        raw.push(("Check".into(), c));
    }
    if let Some(list) = f.get("Checks") {
        let Value::Array(items) = list else { return Err(f.error("Checks", "must be an array of checks")) };
        raw.extend(items.iter().enumerate().map(|(i, c)| (format!("Checks[{i}]"), c)));
    }
    Ok(raw)
}

fn check(f: &Fields, default_id: String, service: &str) -> Result<CheckSpec, FieldError> {
    let kind = check_kind(f)?;
    check_as(f, f, kind, default_id, || format!("Service '{service}' check"))
}

/// A check of `kind` named by `f` (`CheckID`, `Name`, `Status`) and timed by `def`
/// (`Interval`, `Timeout`, ...): the same object, except in a catalog registration, whose
/// checks keep those in their `Definition`.
fn check_as(
    f: &Fields,
    def: &Fields,
    kind: CheckKind,
    default_id: String,
    default_name: impl FnOnce() -> String,
) -> Result<CheckSpec, FieldError> {
    let id = match f.str("CheckID")?.or(f.str("ID")?) {
        None | Some("") => default_id,
        Some(s) => s.to_string(),
    };
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(f.error("CheckID", "must be 1 to 256 characters, without control characters"));
    }
    let name = f.str("Name")?.filter(|s| !s.is_empty()).map_or_else(default_name, str::to_string);
    let (named, f) = (f, def);
    // A catalog check's `Definition` may spell them `IntervalDuration` and so on (Consul's
    // `HealthCheckDefinition`, as node-consul sends it).
    let interval = f.positive_duration("Interval")?.or(f.positive_duration("IntervalDuration")?);
    let interval = match (&kind, interval) {
        (_, Some(i)) => i,
        (CheckKind::Ttl { ttl }, None) => *ttl,
        (CheckKind::External, None) => Duration::ZERO,
        (_, None) => return Err(f.error("Interval", "required for HTTP and TCP checks (e.g. \"10s\")")),
    };
    let initial = match named.str("Status")? {
        None | Some("") => None,
        Some(s) => Some(check_status(named, "Status", s)?),
    };
    Ok(CheckSpec {
        id,
        name,
        kind,
        interval,
        timeout: f.positive_duration("Timeout")?.or(f.positive_duration("TimeoutDuration")?).unwrap_or(DEFAULT_TIMEOUT),
        // Zero means "not set" for these three: Go clients cannot tell the two apart.
        rise: f.uint("SuccessBeforePassing", 0, u32::MAX.into())?.filter(|&n| n > 0).map(|n| n as u32),
        fall: f.uint("FailuresBeforeCritical", 0, u32::MAX.into())?.filter(|&n| n > 0).map(|n| n as u32),
        deregister_after: f
            .duration("DeregisterCriticalServiceAfter")?
            .or(f.duration("DeregisterCriticalServiceAfterDuration")?)
            .filter(|d| !d.is_zero()),
        initial,
    })
}

/// Check kinds Consul has and signpost does not probe.
const UNSUPPORTED: [&str; 8] =
    ["Args", "ScriptArgs", "GRPC", "DockerContainerID", "AliasService", "H2PING", "UDP", "OSService"];

fn check_kind(f: &Fields) -> Result<CheckKind, FieldError> {
    let given: Vec<&str> = ["HTTP", "TCP", "TTL"].into_iter().filter(|k| f.get(k).is_some()).collect();
    // A check registered on its own is the whole body: name the fields themselves.
    let field = if f.path.is_empty() { "HTTP, TCP, TTL".to_string() } else { f.path.clone() };
    let whole = || FieldError { field: field.clone(), rule: String::new() };
    match given.as_slice() {
        [] => {
            let rule = match UNSUPPORTED.iter().find(|k| f.get(k).is_some()) {
                Some(k) => format!("{k} checks are not supported; use exactly one of HTTP, TCP or TTL"),
                None => "needs exactly one of HTTP, TCP or TTL".into(),
            };
            Err(FieldError { rule, ..whole() })
        }
        [_, _, ..] => Err(FieldError {
            rule: format!("has {}; a check takes exactly one of HTTP, TCP or TTL", given.join(" and ")),
            ..whole()
        }),
        ["HTTP"] => http_check(f),
        ["TCP"] => {
            let target = f.str("TCP")?.unwrap_or_default();
            rules::tcp_target(target).map_err(|e| f.invalid("TCP", e))?;
            Ok(CheckKind::Tcp { target: target.to_string() })
        }
        _ => {
            let ttl = f.positive_duration("TTL")?.ok_or_else(|| f.error("TTL", "must be a duration like \"30s\""))?;
            Ok(CheckKind::Ttl { ttl })
        }
    }
}

fn http_check(f: &Fields) -> Result<CheckKind, FieldError> {
    let url = f.str("HTTP")?.unwrap_or_default();
    rules::http_url(url).map_err(|e| f.invalid("HTTP", e))?;
    let method = rules::http_method(f.str("Method")?.unwrap_or_default()).map_err(|e| f.invalid("Method", e))?;
    let mut headers = BTreeMap::new();
    if let Some(v) = f.get("Header") {
        let Value::Object(obj) = v else { return Err(f.error("Header", "must be an object of string arrays")) };
        for (name, values) in obj {
            rules::header_name(name).map_err(|e| f.invalid("Header", e))?;
            let field = format!("Header.{name}");
            // Consul wants arrays; a lone string is what people write by hand, so take it too.
            let values = match values {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| f.error(&field, "must be an array of strings"))?,
                _ => return Err(f.error(&field, "must be an array of strings")),
            };
            for v in &values {
                rules::header_value(v).map_err(|e| f.invalid(&field, e))?;
            }
            headers.insert(name.clone(), values);
        }
    }
    let tls_skip_verify = f.bool("TLSSkipVerify")?.unwrap_or(false);
    Ok(CheckKind::Http { url: url.to_string(), method, headers, tls_skip_verify })
}

fn check_status(f: &Fields, key: &str, s: &str) -> Result<Status, FieldError> {
    match s.parse::<Status>() {
        Ok(status) if status != Status::Maintenance => Ok(status),
        _ => Err(f.error(key, format!("{s:?} is not one of passing, warning, critical"))),
    }
}

pub mod catalog;
#[cfg(test)]
mod tests;
