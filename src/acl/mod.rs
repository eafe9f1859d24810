//! Who may do what through the API: Consul's ACL model, cut down to what a registry needs.
//!
//! A request carries a token (or none); the token names a `Caller` with `Rules`: a policy per
//! service-name prefix (`service_prefix = { "payment-" = "write", "" = "read" }`), the longest
//! matching prefix deciding, as in Consul. `write` allows registering, deregistering, maintenance
//! and TTL updates of the services it covers; `read` allows reading them; `deny` neither. The
//! management token (`[http] token`) may do everything; a request without a token gets the
//! `anonymous` rules. Names match case-insensitively, as service names do everywhere here.
//!
//! This module decides; the API asks it before reading a body (`Rules::may_write_any`) and the
//! registry writer asks it about every service a change touches (`Rules::check`), against the
//! catalog as the change meets it, so that no write slips in between a check and the change.
//! Token secrets and their files are `tokens.rs`.

mod tokens;

use std::fmt;
use std::sync::Arc;

pub use tokens::{Acl, AclConfig, AclError, SecretSource, TokenConfig, Unknown};

/// What a rule allows, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    Deny,
    Read,
    Write,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Deny => "deny",
            Policy::Read => "read",
            Policy::Write => "write",
        }
    }

    /// `"deny"`, `"read"` or `"write"`.
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "deny" => Some(Policy::Deny),
            "read" => Some(Policy::Read),
            "write" => Some(Policy::Write),
            _ => None,
        }
    }
}

/// Policies by service-name prefix (lowercase), longest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    prefixes: Vec<(String, Policy)>,
}

impl Rules {
    /// Rules from `(prefix, policy)` pairs; prefixes are compared case-insensitively.
    pub fn new(rules: impl IntoIterator<Item = (String, Policy)>) -> Rules {
        let mut prefixes: Vec<(String, Policy)> = rules.into_iter().map(|(p, r)| (p.to_ascii_lowercase(), r)).collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        prefixes.dedup_by(|a, b| a.0 == b.0);
        Rules { prefixes }
    }

    /// One policy for every service.
    pub fn everything(policy: Policy) -> Rules {
        Rules::new([(String::new(), policy)])
    }

    /// The rule that decides for `service`: the longest prefix of its name, if any.
    fn rule_for(&self, service: &str) -> Option<&(String, Policy)> {
        let name = service.as_bytes();
        self.prefixes.iter().find(|(p, _)| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
    }

    /// Allows `needed` on `service`, or says which rule refuses it.
    pub fn check(&self, service: &str, needed: Policy) -> Result<(), Denied> {
        let rule = self.rule_for(service);
        if rule.is_some_and(|(_, p)| *p >= needed) {
            return Ok(());
        }
        Err(Denied { service: Some(service.to_string()), needed, rule: rule.cloned() })
    }

    /// Allows `needed` on every service at once (the lists, the status page): the empty prefix
    /// allows it and no longer one takes it away.
    pub fn check_all(&self, needed: Policy) -> Result<(), Denied> {
        let weakest = self.prefixes.iter().filter(|(_, p)| *p < needed).max_by_key(|(p, _)| p.len());
        let refusing = match (weakest, self.prefixes.iter().find(|(p, _)| p.is_empty())) {
            (Some(rule), _) => Some(Some(rule)),
            (None, None) => Some(None),
            (None, Some(_)) => None,
        };
        match refusing {
            None => Ok(()),
            Some(rule) => Err(Denied { service: None, needed, rule: rule.cloned() }),
        }
    }

    /// Returns true if some service may be written: a request without that is refused before its
    /// body is read.
    pub fn may_write_any(&self) -> bool {
        self.prefixes.iter().any(|(_, p)| *p == Policy::Write)
    }
}

/// A request refused by a rule: the service (or every service), the policy it needed and the
/// rule that decided, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Denied {
    /// `None`: the request is about every service.
    pub service: Option<String>,
    pub needed: Policy,
    /// The rule that decided; `None` when no prefix matched.
    pub rule: Option<(String, Policy)>,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needed = self.needed.as_str();
        match &self.service {
            Some(s) => write!(f, "Permission denied: service:{needed} on {s:?} is refused by ")?,
            None => write!(f, "Permission denied: service:{needed} on every service is refused by ")?,
        }
        match &self.rule {
            Some((prefix, policy)) => write!(f, "the rule service_prefix {prefix:?} = {:?}", policy.as_str()),
            None => f.write_str("the absence of a service_prefix rule for it (nothing matched: deny)"),
        }
    }
}

/// Who a request comes from, once its token is looked up.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name for logs: a configured name, `management` or `anonymous`.
    pub name: Arc<str>,
    pub rules: Arc<Rules>,
    /// True for a request without a token: its refusals say how to send one.
    pub anonymous: bool,
}

impl Caller {
    pub fn new(name: &str, rules: Arc<Rules>) -> Caller {
        Caller { name: name.into(), rules, anonymous: false }
    }

    pub fn anonymous(rules: Arc<Rules>) -> Caller {
        Caller { name: "anonymous".into(), rules, anonymous: true }
    }
}

/// Compares a presented token with a secret in time that depends only on their lengths, so that
/// response times do not reveal how much of a guess was right.
pub fn same(presented: &[u8], secret: &[u8]) -> bool {
    let n = presented.len().max(secret.len());
    let diff = (0..n).fold(presented.len() ^ secret.len(), |acc, i| {
        let x = presented.get(i).copied().unwrap_or(0);
        let y = secret.get(i).copied().unwrap_or(0);
        acc | usize::from(x ^ y)
    });
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, Policy)]) -> Rules {
        Rules::new(pairs.iter().map(|(p, r)| (p.to_string(), *r)))
    }

    #[test]
    fn the_longest_matching_prefix_decides() {
        use Policy::*;
        let team = rules(&[("payment-", Write), ("", Read), ("payment-admin", Deny)]);
        // (service, needed, allowed, deciding prefix)
        let cases = [
            ("payment-api", Write, true, "payment-"),
            ("Payment-API", Write, true, "payment-"),
            ("payment-admin-1", Read, false, "payment-admin"),
            ("orders", Read, true, ""),
            ("orders", Write, false, ""),
            ("payment", Write, false, ""),
        ];
        for (service, needed, allowed, prefix) in cases {
            let got = team.check(service, needed);
            assert_eq!(got.is_ok(), allowed, "{service} {needed:?}: {got:?}");
            if let Err(d) = got {
                assert_eq!(d.rule.as_ref().map(|r| r.0.as_str()), Some(prefix), "{service}");
                assert_eq!(d.service.as_deref(), Some(service));
            }
        }
        let none = rules(&[("payment-", Write)]);
        let d = none.check("orders", Read).unwrap_err();
        assert_eq!(d.rule, None);
        assert!(d.to_string().contains("nothing matched"), "{d}");
    }

    #[test]
    fn every_service_needs_the_empty_prefix_and_nothing_weaker_below_it() {
        use Policy::*;
        type Case<'a> = (&'a [(&'a str, Policy)], Policy, bool);
        let cases: [Case; 6] = [
            (&[("", Read)], Read, true),
            (&[("", Read)], Write, false),
            (&[("", Write), ("secret-", Deny)], Read, false),
            (&[("payment-", Write)], Read, false),
            (&[("", Read), ("payment-", Write)], Read, true),
            (&[], Read, false),
        ];
        for (pairs, needed, allowed) in cases {
            assert_eq!(rules(pairs).check_all(needed).is_ok(), allowed, "{pairs:?} {needed:?}");
        }
    }

    #[test]
    fn a_refusal_names_the_service_the_policy_and_the_rule() {
        let d = rules(&[("", Policy::Read)]).check("orders", Policy::Write).unwrap_err();
        assert_eq!(
            d.to_string(),
            "Permission denied: service:write on \"orders\" is refused by the rule service_prefix \"\" = \"read\""
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        for other in [&b"s3cre"[..], b"s3cret!", b"S3cret", b""] {
            assert!(!same(other, b"s3cret"), "{other:?}");
        }
    }
}
