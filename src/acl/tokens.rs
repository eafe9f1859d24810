//! The tokens a server knows: the management token (`[http] token`), named tokens
//! (`[[acl.token]]`) whose secrets come from files or `SIGNPOST_ACL_<NAME>`, and what a request
//! without one may do. Secret files are read again when they change (rotation without a
//! restart); a rotation that cannot be used keeps the secrets in force and is logged.
//!
//! Secrets never leave this module but as `Secret`s (whose `Debug` shows nothing), are compared
//! in constant time, and are never logged: log lines and refusals name tokens, not secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Caller, Rules, same};
use crate::metrics::{Outcome, Reloaded};
use crate::secret::Secret;
use crate::watch::Watch;

/// Where a named token's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret_file`: read at start and again whenever it changes.
    File(PathBuf),
    /// The secret itself, from `SIGNPOST_ACL_<NAME>` (named by `from`).
    Given { from: String, secret: Secret },
}

/// `[[acl.token]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub name: String,
    pub secret: SecretSource,
    pub rules: Rules,
}

/// Every token and the rules of requests without one, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    /// `[http] token` or `SIGNPOST_TOKEN`: may do everything.
    pub management: Option<Secret>,
    pub tokens: Vec<TokenConfig>,
    /// What a request without a token may do (`[acl.anonymous]`, or the default).
    pub anonymous: Rules,
}

impl AclConfig {
    /// The secret files, to watch.
    fn files(&self) -> Vec<&Path> {
        let files = self.tokens.iter().filter_map(|t| match &t.secret {
            SecretSource::File(path) => Some(path.as_path()),
            SecretSource::Given { .. } => None,
        });
        files.collect()
    }

    /// Returns true if any token is configured: presented tokens are then looked up, and one
    /// that matches none is refused. Without any, tokens are ignored, as before tokens existed.
    pub fn has_tokens(&self) -> bool {
        self.management.is_some() || !self.tokens.is_empty()
    }
}

/// Why the tokens cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("acl.token {name:?}: {}: cannot read the secret: {source}", path.display())]
    Read { name: String, path: PathBuf, source: std::io::Error },
    #[error("acl.token {name:?}: {from} is empty")]
    Empty { name: String, from: String },
    #[error("tokens {a:?} and {b:?} have the same secret; give each its own")]
    Duplicate { a: String, b: String },
    #[error("cannot watch {} for changes: {source}", path.display())]
    Watch { path: PathBuf, source: notify::Error },
}

/// A presented token that matches none of the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Permission denied: ACL not found (the token matches none this server knows)")]
pub struct Unknown;

/// A named token in force.
#[derive(Clone)]
struct Named {
    caller: Caller,
    secret: Secret,
}

/// The tokens in force, and how to read them again.
pub struct Acl {
    config: AclConfig,
    management: Caller,
    anonymous: Caller,
    named: ArcSwap<Vec<Named>>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Acl {
    /// Reads every secret and checks that no two tokens share one.
    pub fn load(config: AclConfig) -> Result<Acl, AclError> {
        let named = read_all(&config)?;
        Ok(Acl {
            management: Caller::new("management", Arc::new(Rules::everything(super::Policy::Write))),
            anonymous: Caller::anonymous(Arc::new(config.anonymous.clone())),
            named: ArcSwap::from_pointee(named),
            config,
        })
    }

    /// Returns true if reads and writes depend on tokens at all.
    pub fn has_tokens(&self) -> bool {
        self.config.has_tokens()
    }

    /// The caller a request with `presented` (or no token) is. Every configured secret is
    /// compared, whichever matches, so that the time taken says nothing about which did.
    pub fn resolve(&self, presented: Option<&str>) -> Result<Caller, Unknown> {
        let Some(token) = presented.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(self.anonymous.clone());
        };
        if !self.has_tokens() {
            return Ok(self.anonymous.clone());
        }
        let mut found = None;
        if let Some(m) = &self.config.management
            && same(token.as_bytes(), m.as_bytes())
        {
            found = Some(self.management.clone());
        }
        for n in self.named.load().iter() {
            if same(token.as_bytes(), n.secret.as_bytes()) && found.is_none() {
                found = Some(n.caller.clone());
            }
        }
        found.ok_or(Unknown)
    }

    /// A watch of the folders holding the secret files (`None` if no secret is in a file).
    /// Start it before `load`, so that a rotation in between is not missed.
    pub fn watch(config: &AclConfig) -> Result<Option<Watch>, AclError> {
        let files = config.files();
        let Some(first) = files.first() else { return Ok(None) };
        Watch::files("token files", &files)
            .map(Some)
            .map_err(|source| AclError::Watch { path: first.to_path_buf(), source })
    }

    /// Reads the secrets again. Returns the names of the tokens whose secret changed; an error
    /// leaves every token as it was.
    pub fn reload(&self) -> Result<Vec<String>, AclError> {
        let next = read_all(&self.config)?;
        let current = self.named.load();
        let changed: Vec<String> = next
            .iter()
            .zip(current.iter())
            .filter(|(a, b)| a.secret != b.secret)
            .map(|(a, _)| a.caller.name.to_string())
            .collect();
        if !changed.is_empty() {
            self.named.store(Arc::new(next));
        }
        Ok(changed)
    }

    /// Reloads after every change in the secret files' folders until `token` is cancelled.
    pub async fn follow(self: Arc<Self>, watch: Watch, token: CancellationToken) {
        watch
            .each(token, || {
                let result = self.reload();
                match &result {
                    Ok(changed) if changed.is_empty() => return,
                    Ok(changed) => info!(tokens = ?changed, "token secrets reloaded"),
                    Err(e) => warn!(error = %e, "token files changed but cannot be used; the secrets in force stay"),
                }
                crate::metrics::reloaded(Reloaded::Tokens, Outcome::of(&result));
            })
            .await
    }
}

/// Every named token with its secret read now, in configuration order.
fn read_all(config: &AclConfig) -> Result<Vec<Named>, AclError> {
    let mut named = Vec::with_capacity(config.tokens.len());
    for t in &config.tokens {
        named.push(Named { caller: Caller::new(&t.name, Arc::new(t.rules.clone())), secret: read(t)? });
    }
    let mut secrets: Vec<(&str, &Secret)> = named.iter().map(|n| (&*n.caller.name, &n.secret)).collect();
    secrets.extend(config.management.as_ref().map(|m| ("management", m)));
    let mut seen = BTreeSet::new();
    for (i, (a, secret)) in secrets.iter().enumerate() {
        if !seen.insert(&***secret) {
            let b = secrets[..i].iter().find(|(_, s)| s == secret).map_or("", |(n, _)| n);
            return Err(AclError::Duplicate { a: b.to_string(), b: a.to_string() });
        }
    }
    Ok(named)
}

/// One token's secret, trimmed (files usually end with a newline).
fn read(t: &TokenConfig) -> Result<Secret, AclError> {
    let (text, from) = match &t.secret {
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
                name: t.name.clone(),
                path: path.clone(),
                source,
            })?;
            (text, path.display().to_string())
        }
        SecretSource::Given { from, secret } => (secret.to_string(), from.clone()),
    };
    let secret = text.trim();
    if secret.is_empty() {
        return Err(AclError::Empty { name: t.name.clone(), from });
    }
    Ok(Secret::from(secret))
}
