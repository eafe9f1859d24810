//! How replicas prove who they are to etcd, from `[store] ca_file`, `cert_file`, `key_file`,
//! `username` and `password_file`: TLS with etcd-client's rustls (a client certificate for
//! etcd's `--client-cert-auth`), and a user for etcd's authentication, whose token etcd-client
//! renews when it expires. And which of etcd's refusals mean that the configuration is wrong, so
//! that a replica stops at once with the reason, instead of trying again for 30 s as it does
//! while a member is down.

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use crate::store::{ClusterConfig, StoreError};

/// What `Pool::connect` needs: the options every client gets, and the user to authenticate as.
pub(crate) struct Access {
    pub options: ConnectOptions,
    pub user: Option<(String, String)>,
}

/// Reads and checks the files the configuration names.
pub(crate) fn read(config: &ClusterConfig, base: ConnectOptions) -> Result<Access, StoreError> {
    let mut options = base;
    if let Some(tls) = &config.tls {
        let pem = crate::tls::ClientPem::load(Some(&tls.ca_file), tls.cert_file.as_deref(), tls.key_file.as_deref())
            .map_err(|e| StoreError::Unavailable(format!("etcd over TLS: {e}")))?;
        let mut t = TlsOptions::new();
        if let Some(ca) = &pem.ca {
            t = t.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &pem.identity {
            t = t.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(t);
    }
    let user = match &config.user {
        Some(u) => {
            let text = std::fs::read_to_string(&u.password_file).map_err(|e| {
                StoreError::Unavailable(format!(
                    "[store] password_file {}: cannot read: {e}",
                    u.password_file.display()
                ))
            })?;
            let password = text.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                let file = u.password_file.display();
                return Err(StoreError::Unavailable(format!("[store] password_file {file} is empty")));
            }
            Some((u.name.clone(), password))
        }
        None => None,
    };
    Ok(Access { options, user })
}

/// The start-up error for a refusal that says the configuration is wrong (wrong password, a
/// certificate either side refuses, a user without the permissions it needs); `None` for what
/// may pass (a member down, an election).
pub(crate) fn misconfigured(e: &etcd_client::Error, config: &ClusterConfig, endpoint: &str) -> Option<String> {
    use tonic::Code;
    let files = "[store] ca_file (the CA that issued etcd's certificate), cert_file and key_file (a client \
                 certificate issued by the CA etcd's --trusted-ca-file names)";
    // etcd-client's error does not lead to its causes; the gRPC status it holds does.
    let refusal = match e {
        etcd_client::Error::GRpcStatus(status) => crate::tls::refusal(status),
        e => crate::tls::refusal(e),
    };
    if let Some(tls) = refusal {
        return Some(format!("etcd at {endpoint}: the TLS handshake failed ({tls}); check {files}"));
    }
    let etcd_client::Error::GRpcStatus(status) = e else { return None };
    let message = status.message();
    let user = config.user.as_ref();
    let name = user.map_or(String::new(), |u| format!(" {:?}", u.name));
    match status.code() {
        Code::InvalidArgument if message.contains("authentication failed") => Some(format!(
            "etcd at {endpoint} refused user{name}: wrong user name or password (the password is read from [store] password_file {})",
            user.map_or(String::new(), |u| u.password_file.display().to_string())
        )),
        Code::InvalidArgument if message.contains("user name is empty") => Some(format!(
            "etcd at {endpoint} has authentication enabled: set [store] username and password_file, or a client certificate whose common name is an etcd user"
        )),
        Code::PermissionDenied if user.is_some() => Some(format!(
            "etcd at {endpoint}: user{name} may not use {}: grant it a role with readwrite on that prefix (etcdctl role grant-permission ROLE --prefix=true readwrite {})",
            config.prefix, config.prefix
        )),
        // With --client-cert-auth, a request without a user is the certificate's common name.
        Code::PermissionDenied => Some(format!(
            "etcd at {endpoint} refused access to {} without a user: set [store] username and password_file, or make the client certificate's common name an etcd user with readwrite on that prefix",
            config.prefix
        )),
        Code::FailedPrecondition if message.contains("authentication is not enabled") => Some(format!(
            "etcd at {endpoint} has no authentication enabled, but [store] username is set: enable it (etcdctl auth enable) or remove username and password_file"
        )),
        _ => None,
    }
}
