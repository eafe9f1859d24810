//! The one place where failures become HTTP answers. Handlers return `ApiError`; this module
//! decides the status code, so the same registry error answers the same way on every route.
//! Bodies are one line of plain text, as Consul's are, naming the field and the rule.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::registry::RegistryError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or breaks a rule: 400.
    #[error("{0}")]
    BadRequest(String),
    /// A rule refuses what the request needs: 403, naming the service, the policy and the rule.
    #[error("{denied}{}", if *anonymous { ANONYMOUS_HINT } else { "" })]
    Denied { denied: crate::acl::Denied, anonymous: bool },
    /// A write from a caller who may write no service at all, refused before its body is read.
    #[error("{}", if *anonymous {
        "Permission denied: writes need a token (in X-Consul-Token, Authorization: Bearer or ?token=)"
    } else {
        "Permission denied: this token may write no service (none of its service_prefix rules is \"write\")"
    })]
    NoWrite { anonymous: bool },
    /// A token that matches none this server knows: 403.
    #[error("{0}")]
    UnknownToken(#[from] crate::acl::Unknown),
    /// Our own mistake: 500.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// 404 with a message, for names the registry never had (agent health by name).
    #[error("{0}")]
    NotFound(String),
    /// The body is over the limit: 413.
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Request line and headers over the limit: 431.
    #[error("request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// A bound on work in progress was hit (`HttpLimits`): 429.
    #[error("{0}")]
    Busy(&'static str),
    /// What the registry refused.
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// Added to refusals of requests without a token.
const ANONYMOUS_HINT: &str =
    " (the request carries no token: send one in X-Consul-Token, Authorization: Bearer or ?token=)";

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Denied { .. } | ApiError::NoWrite { .. } | ApiError::UnknownToken(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Registry(e) => match e {
                RegistryError::ZoneOwned { .. } => StatusCode::CONFLICT,
                // A check id another instance already uses: the client asked for something
                // that cannot coexist with the catalog as it is, like a zone-owned id.
                RegistryError::CheckIdTaken { .. } | RegistryError::IdOnOtherNode { .. } => StatusCode::CONFLICT,
                RegistryError::UnknownInstance(_) | RegistryError::UnknownCheck(_) | RegistryError::UnknownNode(_) => {
                    StatusCode::NOT_FOUND
                }
                // Zone errors never come back from API changes; if one ever does, it is ours.
                RegistryError::Zone(_) => StatusCode::INTERNAL_SERVER_ERROR,
                RegistryError::Store(_) | RegistryError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                RegistryError::Denied(_) => StatusCode::FORBIDDEN,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "API request failed");
        }
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.to_string()).into_response()
    }
}
