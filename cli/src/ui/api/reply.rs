//! How an API answer leaves: [`ApiError`] turns a [`UiError`] into the JSON error body and
//! status, and [`json_bytes`] sends a body that a handler serialized on its blocking thread.
//!
//! It must not know any route or the shape of any answer.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::ui::respond;
use crate::ui::state::UiError;

/// A [`UiError`] answered as JSON.
pub struct ApiError(pub UiError);

impl From<UiError> for ApiError {
    fn from(e: UiError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond::api_error(self.0.status(), self.0.kind(), &self.0.message())
    }
}

/// What every handler returns.
pub(super) type ApiResult<T> = Result<T, ApiError>;

/// A JSON body made elsewhere.
pub(super) fn json_bytes(body: Vec<u8>) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
