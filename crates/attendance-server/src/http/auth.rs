//! Who is asking: the LiveKit access token in `Authorization` (or, for live
//! sockets, the query) verified into a [`Principal`].

use std::convert::Infallible;

use warp::{Filter, Rejection};

use super::error::{ApiError, Refusal};
use super::App;
use crate::livekit::tokens::token_from_header;
use crate::livekit::{Principal, TokenError};

impl App {
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = token_from_header(authorization).ok_or(TokenError::Missing)?;
        Ok(self.keys.principal(token)?)
    }
}

/// The caller's principal; a missing or invalid token is refused with 401.
pub fn principal(app: &App) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    let app = app.clone();
    warp::header::optional::<String>("authorization").and_then(move |auth: Option<String>| {
        let result = app.authenticate(auth.as_deref());
        async move { result.map_err(|e| warp::reject::custom(Refusal(e))) }
    })
}

pub fn with_app(app: &App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    let app = app.clone();
    warp::any().map(move || app.clone())
}
