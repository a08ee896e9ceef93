//! One error type for every route: each failure becomes a clear status and a
//! JSON `{"error": …}` body.

use std::convert::Infallible;

use serde::Serialize;
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Rejection;

use crate::ingest::receive::ReceiveError;
use crate::livekit::TokenError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult = Result<Response, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// The 404 for a room nobody scheduled.
    pub fn no_session(room: &str) -> Self {
        Self::not_found(format!("no session scheduled for room `{room}`"))
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; retry shortly",
        )
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "database error");
        ApiError::unavailable()
    }
}

impl From<ReceiveError> for ApiError {
    fn from(error: ReceiveError) -> Self {
        match error {
            ReceiveError::Refused(e) => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
            ReceiveError::Malformed(reason) => ApiError::bad_request(reason),
            ReceiveError::Unavailable => ApiError::unavailable(),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response = warp::reply::with_status(
            warp::reply::json(&json!({ "error": self.message })),
            self.status,
        )
        .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

/// An [`ApiError`] raised by a filter (authentication) rather than a handler.
#[derive(Debug)]
pub struct Refusal(pub ApiError);

impl warp::reject::Reject for Refusal {}

/// A handler's result as warp's reply: errors are responses too.
pub fn respond(result: ApiResult) -> Result<Response, Infallible> {
    Ok(result.unwrap_or_else(Reply::into_response))
}

pub fn json_reply<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// What a request that no route answered gets.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(Refusal(error)) = rejection.find::<Refusal>() {
        ApiError::new(error.status, error.message.clone())
    } else if rejection.is_not_found() {
        ApiError::not_found("not found")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::bad_request(format!("{rejection:?}"))
    };
    Ok(error.into_response())
}
