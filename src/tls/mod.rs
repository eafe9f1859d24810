//! TLS material from PEM files, for every side that speaks TLS: the API's server certificate
//! (`server.rs`, reloaded when the files change), the CLI's CA and client certificate, and
//! cluster mode's connection to etcd. One set of rules and one set of messages, so that a bad
//! file is refused the same way wherever it is named: the file, then what is wrong with it.
//!
//! rustls only (with ring, as reqwest here uses it): no OpenSSL, no system library.

mod server;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;
use x509_cert::der::Decode;

pub use server::{ServerFiles, ServerTls};

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Missing, unreadable, a folder...
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file holds no PEM block of the kind needed, or a broken one.
    #[error("{}: {problem}", path.display())]
    NotPem { path: PathBuf, problem: String },
    /// The private key is not the one the certificate was issued for.
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// Well-formed PEM that rustls cannot use (an unsupported key type, a certificate that does
    /// not parse).
    #[error("{}: {problem}", path.display())]
    Unusable { path: PathBuf, problem: String },
    /// The folders holding the files cannot be watched for renewals.
    #[error("cannot watch {} for renewals: {source}", path.display())]
    Watch { path: PathBuf, source: notify::Error },
}

/// The crypto provider every TLS side here uses.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process' default provider, for libraries that build their own TLS
/// configuration (reqwest is built without a default provider; see Cargo.toml).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A file's bytes, or why they cannot be read.
pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// The certificates of a PEM file (a chain: the certificate first, then its intermediates; or a
/// bundle of CA certificates).
pub fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, "certificates", e))?;
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            problem: "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    for cert in &certs {
        x509_cert::Certificate::from_der(cert).map_err(|e| TlsError::Unusable {
            path: path.to_path_buf(),
            problem: format!("a certificate in it does not parse: {e}"),
        })?;
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NotPem {
            path: path.to_path_buf(),
            problem: "no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY)"
                .into(),
        },
        e => not_pem(path, "a private key", e),
    })
}

fn not_pem(path: &Path, what: &str, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::NotPem { path: path.to_path_buf(), problem: format!("cannot read {what} from it as PEM: {e}") }
}

/// A certificate chain with its key, checked to belong together.
pub fn certified_key(
    cert_path: &Path,
    certs: Vec<CertificateDer<'static>>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    rustls::sign::CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::KeyMismatch { cert: cert_path.to_path_buf(), key: key_path.to_path_buf() }
        }
        e => TlsError::Unusable { path: key_path.to_path_buf(), problem: format!("rustls cannot use the key: {e}") },
    })
}

/// The moment a certificate stops being valid, as `2026-01-31T12:00:00Z` and as a time.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<(String, SystemTime)> {
    let cert = x509_cert::Certificate::from_der(cert).ok()?;
    let t = cert.tbs_certificate.validity.not_after;
    Some((t.to_date_time().to_string(), t.to_system_time()))
}

/// Logs a warning if the first certificate of `certs` has expired: clients will refuse it, but a
/// server that refused to start over it would be down until someone renews it by hand.
pub fn warn_if_expired(path: &Path, certs: &[CertificateDer<'_>]) {
    if let Some((date, at)) = certs.first().and_then(not_after)
        && at < SystemTime::now()
    {
        warn!(file = %path.display(), expired = %date, "the certificate has expired; clients will refuse it until it is renewed");
    }
}

/// Why TLS failed, if that is what `e` says somewhere in its chain of causes: rustls refusing
/// the peer's certificate, or the peer refusing ours with an alert (which rustls reports as
/// text). Looks inside `io::Error`s too, which carry it (hyper and tonic wrap it twice) but whose
/// `source` skips what they carry.
pub fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        let mut inner = e;
        loop {
            if let Some(found) = inner.downcast_ref::<rustls::Error>() {
                return Some(found.to_string());
            }
            let text = inner.to_string();
            if let Some(at) = text.find("received fatal alert") {
                // Often inside another error's debug text: keep the phrase alone.
                let phrase = &text[at..];
                return Some(phrase.split(['"', ')', ',']).next().unwrap_or(phrase).to_string());
            }
            match inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                Some(carried) => inner = carried,
                None => break,
            }
        }
        next = e.source();
    }
    None
}

/// What a TLS client presents and trusts, read and checked: the CA certificates to trust
/// (`ca_file`) and a client certificate with its key (`cert_file`, `key_file`), as PEM.
#[derive(Clone, Default)]
pub struct ClientPem {
    pub ca: Option<Vec<u8>>,
    /// The certificate chain and key, checked to match.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.debug_struct("ClientPem").field("ca", &self.ca.is_some()).field("identity", &self.identity.is_some()).finish()
    }
}

impl ClientPem {
    /// Reads and checks the files: each must exist and hold what it is named for, and the key
    /// must belong to the certificate.
    pub fn load(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<ClientPem, TlsError> {
        let ca = match ca {
            Some(path) => {
                let pem = read(path)?;
                let certs = certificates(path, &pem)?;
                warn_if_expired(path, &certs);
                Some(pem)
            }
            None => None,
        };
        let identity = match (cert, key) {
            (Some(cert_path), Some(key_path)) => {
                let (cert_pem, key_pem) = (read(cert_path)?, read(key_path)?);
                let certs = certificates(cert_path, &cert_pem)?;
                warn_if_expired(cert_path, &certs);
                certified_key(cert_path, certs, key_path, private_key(key_path, &key_pem)?)?;
                Some((cert_pem, key_pem))
            }
            _ => None,
        };
        Ok(ClientPem { ca, identity })
    }

    /// The client certificate and key as one PEM (reqwest's `Identity` reads them so).
    pub fn identity_pem(&self) -> Option<Vec<u8>> {
        self.identity.as_ref().map(|(cert, key)| [cert.as_slice(), b"\n", key.as_slice()].concat())
    }
}
