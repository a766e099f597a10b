//! Request-level errors: each maps to one HTTP status and one stable code.
//!
//! The code is written twice in the JSON body, as `error` (trackgate's
//! documented field) and as `code`, the field Segment-style clients read
//! (analytics-python, rudder-sdk-python): without it they cannot tell a
//! permanent rejection from a transient failure and retry it for minutes.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no write key: send it as the Basic auth user name, a Bearer token, the `writeKey` body field or the `writeKey` query parameter")]
    MissingWriteKey,
    #[error("unknown write key")]
    InvalidWriteKey,
    #[error("unknown server key")]
    InvalidServerKey,
    #[error("opting ids out needs an allowed Origin (browsers) or the server key (servers)")]
    OriginRequired,
    #[error("opting in needs the visitor's opt-out cookie or the server key")]
    ProofRequired,
    #[error("opting in needs the visitor's cookies, which a page whose origin is allowed only through `*` may not use: list the origin in `allowed_origins`, or use the server key")]
    CredentialsNotAllowed,
    #[error(
        "an opt-in names the ids to opt back in (`anonymousId`, `userId`); nothing was changed"
    )]
    IdentityRequired,
    #[error("the source's share of the opt-out list is full, retry later")]
    OptOutListFull,
    #[error("the opt-out list is not loaded yet, retry later")]
    OptOutListLoading,
    #[error("origin {0} is not allowed for this source")]
    OriginNotAllowed(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("batch has more than {0} events")]
    TooManyEvents(usize),
    /// What the request would write is over a limit: its batch `context`,
    /// or its records with the context merged into each; says which.
    #[error("{0}")]
    OutputTooLarge(String),
    /// A single-event request whose event is over `limits.max_event_bytes`.
    #[error("event is larger than limits.max_event_bytes = {0} bytes")]
    EventTooLarge(usize),
    #[error("content encoding must be gzip, deflate or identity")]
    UnsupportedContentEncoding,
    #[error("request body could not be decompressed")]
    InvalidCompression,
    #[error("request body is not valid JSON (it is read as JSON whatever its Content-Type): {0}")]
    InvalidJson(String),
    /// A body field the request itself reads is of the wrong type.
    #[error("request body field `{0}` must be a string")]
    InvalidField(&'static str),
    /// The batch envelope is malformed; says how.
    #[error("{0}")]
    InvalidBatch(String),
    #[error("`anonymousId` or `userId` is not a non-empty string of at most 256 characters")]
    InvalidIdentity,
    #[error("request body was not received in time")]
    BodyTimeout,
    #[error("could not read the request body")]
    BodyRead,
    #[error("no such endpoint")]
    NotFound,
    /// Carries the endpoint's methods, sent as the `Allow` header.
    #[error("method not allowed on this endpoint (allowed: {0})")]
    MethodNotAllowed(&'static str),
    #[error("the gateway is over capacity, retry later")]
    Unavailable,
    #[error("too many requests, retry later")]
    RateLimited { retry_after_secs: u32 },
    /// The client address added its share of opt-outs for this window: to
    /// the client, a rate limit like any other.
    #[error("this address added its share of opt-outs for now, retry later")]
    OptOutAddressFull { retry_after_secs: u32 },
    #[error("too many requests in flight, retry later")]
    Overloaded,
    #[error("JSON nests objects or arrays deeper than {0} levels")]
    TooDeep(usize),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingWriteKey | ApiError::InvalidWriteKey | ApiError::InvalidServerKey => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::OriginNotAllowed(_)
            | ApiError::OriginRequired
            | ApiError::ProofRequired
            | ApiError::CredentialsNotAllowed => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_)
            | ApiError::TooManyEvents(_)
            | ApiError::OutputTooLarge(_)
            | ApiError::EventTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedContentEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidCompression
            | ApiError::InvalidJson(_)
            | ApiError::InvalidBatch(_)
            | ApiError::InvalidField(_)
            | ApiError::InvalidIdentity
            | ApiError::IdentityRequired
            | ApiError::BodyRead
            | ApiError::TooDeep(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable
            | ApiError::Overloaded
            | ApiError::OptOutListFull
            | ApiError::OptOutListLoading => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } | ApiError::OptOutAddressFull { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// The stable machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingWriteKey => "missing_write_key",
            ApiError::InvalidWriteKey => "invalid_write_key",
            ApiError::InvalidServerKey => "invalid_server_key",
            ApiError::OriginRequired => "origin_required",
            ApiError::ProofRequired => "proof_required",
            ApiError::CredentialsNotAllowed => "credentials_not_allowed",
            ApiError::IdentityRequired => "identity_required",
            ApiError::OptOutListFull => "optout_list_full",
            ApiError::OptOutListLoading => "optout_list_loading",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::PayloadTooLarge(_) | ApiError::OutputTooLarge(_) => "payload_too_large",
            ApiError::EventTooLarge(_) => "event_too_large",
            ApiError::TooManyEvents(_) => "too_many_events",
            ApiError::UnsupportedContentEncoding => "unsupported_content_encoding",
            ApiError::InvalidCompression => "invalid_compression",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidBatch(_) => "invalid_batch",
            ApiError::InvalidField(_) => "invalid_field",
            ApiError::InvalidIdentity => "invalid_identity",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::BodyRead => "body_read_error",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable => "unavailable",
            ApiError::RateLimited { .. } | ApiError::OptOutAddressFull { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::TooDeep(_) => "too_deep",
        }
    }

    /// `Retry-After` seconds this error carries itself (rate limits know
    /// when the client may come back); others use `server.retry_after_secs`.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::OptOutAddressFull { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}
