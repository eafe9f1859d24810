//! How a service wants to be answered: the DNS settings an instance's declaration carries
//! (TTL, answer limit, passing-only, what to answer when none is healthy), merged across a
//! service's declarations.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An instance's `ServicePolicy`, boxed only when it sets something: almost none do, and
/// inline it took 32 bytes of each of 100,000 instances (3.2 MB of a replica's heap, glibc's
/// rounding included). Reads through `Deref`; stored and sent as the full `ServicePolicy`, as
/// before, so that records and replicas of either build read each other's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy(Option<Box<ServicePolicy>>);

/// What `Policy::default()` reads as.
const NO_POLICY: ServicePolicy =
    ServicePolicy { ttl: None, answer_limit: None, only_passing: None, when_none_healthy: None };

impl From<ServicePolicy> for Policy {
    fn from(p: ServicePolicy) -> Policy {
        Policy((p != NO_POLICY).then(|| Box::new(p)))
    }
}

impl std::ops::Deref for Policy {
    type Target = ServicePolicy;

    fn deref(&self) -> &ServicePolicy {
        self.0.as_deref().unwrap_or(&NO_POLICY)
    }
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        ServicePolicy::deserialize(d).map(Policy::from)
    }
}

/// What to answer when a service has instances but none is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WhenNoneHealthy {
    /// NODATA: callers learn there is nothing to call.
    #[default]
    Empty,
    /// Fail open: answer every instance (except those in maintenance).
    All,
}

/// Per-service DNS settings; `None` = the global `[dns]` value. When several declarations of one
/// service disagree, the most conservative wins (smallest TTL, smallest positive limit, any
/// `only_passing`, any `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServicePolicy {
    pub ttl: Option<Duration>,
    /// 0 = no limit.
    pub answer_limit: Option<u32>,
    pub only_passing: Option<bool>,
    pub when_none_healthy: Option<WhenNoneHealthy>,
}

impl ServicePolicy {
    /// Two declarations of one service's settings as one, the most conservative of each.
    pub fn merge(self, other: ServicePolicy) -> ServicePolicy {
        ServicePolicy {
            ttl: match (self.ttl, other.ttl) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            // 0 means "no limit", so the smallest positive limit wins over it.
            answer_limit: match (self.answer_limit, other.answer_limit) {
                (Some(a), Some(b)) if a > 0 && b > 0 => Some(a.min(b)),
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            only_passing: match (self.only_passing, other.only_passing) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            },
            when_none_healthy: match (self.when_none_healthy, other.when_none_healthy) {
                (Some(WhenNoneHealthy::All), _) | (_, Some(WhenNoneHealthy::All)) => Some(WhenNoneHealthy::All),
                (a, b) => a.or(b),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored records and other replicas see the same JSON as when the policy was inline.
    #[test]
    fn a_policy_is_written_and_read_as_the_full_settings() {
        let none = serde_json::to_value(Policy::default()).unwrap();
        assert_eq!(
            none,
            serde_json::json!({"ttl": null, "answer_limit": null, "only_passing": null, "when_none_healthy": null})
        );
        assert_eq!(serde_json::from_value::<Policy>(none).unwrap(), Policy::default());
        let some =
            ServicePolicy { ttl: Some(Duration::from_secs(5)), answer_limit: Some(2), ..ServicePolicy::default() };
        let json = serde_json::to_value(Policy::from(some)).unwrap();
        assert_eq!(json, serde_json::to_value(some).unwrap());
        let back = serde_json::from_value::<Policy>(json).unwrap();
        assert_eq!((back.ttl, back.answer_limit, back.only_passing), (Some(Duration::from_secs(5)), Some(2), None));
        assert_eq!(Policy::from(ServicePolicy::default()), Policy::default(), "the default is not boxed");
    }
}
