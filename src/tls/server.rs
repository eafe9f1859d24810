//! The API's TLS server configuration, read from `[http] tls_cert`, `tls_key` and
//! `tls_client_ca`, and read again whenever those files change: certbot and cert-manager renew
//! certificates on disk, and a renewed one must reach new connections without a restart.
//!
//! Every connection takes the configuration current when it is accepted (`config`), so a reload
//! is one pointer swap: connections already open keep the certificate they began with, new ones
//! get the new one. A renewal that cannot be used (a half-written file, a key that does not match
//! yet) changes nothing and is logged; the last good configuration keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{TlsError, certificates, certified_key, not_after, private_key, provider, read, warn_if_expired};
use crate::metrics::{Outcome, Reloaded};
use crate::watch::Watch;

/// `[http] tls_cert`, `tls_key` and `tls_client_ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The certificate chain, PEM: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

impl ServerFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.client_ca.as_deref());
        paths
    }
}

/// The current server configuration, and the files it is read from.
pub struct ServerTls {
    files: ServerFiles,
    current: ArcSwap<ServerConfig>,
    /// The bytes the current configuration was built from: an event that leaves them as they
    /// were (a `touch`, another file in the same folder) is no reload.
    loaded: Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks the files. An expired certificate is a warning, not an error.
    pub fn load(files: ServerFiles) -> Result<ServerTls, TlsError> {
        let bytes = read_all(&files)?;
        let config = build(&files, &bytes)?;
        Ok(ServerTls { files, current: ArcSwap::from_pointee(config), loaded: Mutex::new(bytes) })
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// A watch of the folders holding the files; start it before `load`, so that a renewal in
    /// between is not missed.
    pub fn watch(files: &ServerFiles) -> Result<Watch, TlsError> {
        Watch::files("TLS files", &files.paths()).map_err(|source| TlsError::Watch { path: files.cert.clone(), source })
    }

    /// Reads the files again. Returns true if a new configuration now serves, false if the files
    /// hold what is already served; an error leaves the current configuration in place.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let bytes = read_all(&self.files)?;
        let mut loaded = self.loaded.lock().expect("not poisoned");
        if *loaded == bytes {
            return Ok(false);
        }
        let config = build(&self.files, &bytes)?;
        self.current.store(Arc::new(config));
        *loaded = bytes;
        Ok(true)
    }

    /// Reloads after every change in the files' folders until `token` is cancelled.
    pub async fn follow(self: Arc<Self>, watch: Watch, token: CancellationToken) {
        watch
            .each(token, || {
                let result = self.reload();
                match &result {
                    Ok(true) => {
                        let expires = self.expires().unwrap_or_default();
                        let file = self.files.cert.display();
                        info!(file = %file, expires = %expires, "TLS certificate reloaded; new connections get it");
                    }
                    Ok(false) => return,
                    Err(e) => {
                        warn!(error = %e, "TLS files changed but cannot be used; the last good certificate keeps serving")
                    }
                }
                crate::metrics::reloaded(Reloaded::Tls, Outcome::of(&result));
            })
            .await
    }

    /// When the certificate served now expires, as `2026-01-31T12:00:00Z`.
    pub fn expires(&self) -> Option<String> {
        let loaded = self.loaded.lock().expect("not poisoned");
        let certs = certificates(&self.files.cert, &loaded[0]).ok()?;
        not_after(certs.first()?).map(|(date, _)| date)
    }
}

/// The files' bytes, in `ServerFiles::paths` order.
fn read_all(files: &ServerFiles) -> Result<Vec<Vec<u8>>, TlsError> {
    files.paths().into_iter().map(read).collect()
}

/// A server configuration from the files' bytes (`read_all`): TLS 1.3 and 1.2, HTTP/1.1, and
/// client certificates required when a client CA is given.
fn build(files: &ServerFiles, bytes: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let certs = certificates(&files.cert, &bytes[0])?;
    warn_if_expired(&files.cert, &certs);
    let key = private_key(&files.key, &bytes[1])?;
    let certified = certified_key(&files.cert, certs, &files.key, key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match (&files.client_ca, bytes.get(2)) {
        (Some(path), Some(pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path, pem)? {
                roots.add(cert).map_err(|e| TlsError::Unusable {
                    path: path.clone(),
                    problem: format!("not a CA certificate rustls can use: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Unusable { path: path.clone(), problem: format!("{e}") })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    // axum serves HTTP/1.1 here (its http2 feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
