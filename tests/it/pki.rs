//! Certificates for the TLS tests, made here with rcgen: a CA, server certificates for
//! 127.0.0.1 and localhost, client certificates, all as PEM files in a temporary folder.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA and the folder its files go to.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_path: PathBuf,
}

/// A certificate and its key, as PEM text.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// What a certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

impl Pki {
    /// A new CA named `name`, written to `<dir>/<name>.pem`.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = write_atomically(&dir.path().join(format!("{name}.pem")), &ca.pem());
        Pki { dir, ca, ca_path }
    }

    /// The CA certificate file.
    pub fn ca(&self) -> PathBuf {
        self.ca_path.clone()
    }

    /// A certificate named `cn` signed by this CA, valid for 127.0.0.1 and localhost.
    pub fn issue(&self, cn: &str, usage: Usage) -> Leaf {
        self.issue_until(cn, usage, None)
    }

    /// Like `issue`, valid until the start of that day (year, month, day) when given.
    pub fn issue_until(&self, cn: &str, usage: Usage, not_after: Option<(i32, u8, u8)>) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// Writes `text` to `<dir>/<name>` (by a rename, as renewal tools do); returns the path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write_atomically(&self.dir.path().join(name), text)
    }

    /// Issues `cn` and writes it as `<cn>-cert.pem` and `<cn>-key.pem`.
    pub fn files(&self, cn: &str, usage: Usage) -> (PathBuf, PathBuf) {
        let leaf = self.issue(cn, usage);
        (self.write(&format!("{cn}-cert.pem"), &leaf.cert), self.write(&format!("{cn}-key.pem"), &leaf.key))
    }
}

/// Writes through a temporary file and a rename, so that a reader never sees half a file.
pub fn write_atomically(path: &Path, text: &str) -> PathBuf {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    path.to_path_buf()
}

/// The common name of the certificate a response was served with (reqwest's `tls_info`).
pub fn served_cn(response: &reqwest::Response) -> String {
    use x509_cert::der::Decode;
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("tls_info is on");
    let der = info.peer_certificate().expect("the server sent a certificate");
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    cert.tbs_certificate.subject.to_string().trim_start_matches("CN=").to_string()
}
