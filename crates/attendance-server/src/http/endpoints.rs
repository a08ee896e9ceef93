//! Outbound webhook endpoints and their messages, for administrators:
//! `/api/admin/endpoints…` and `/api/admin/messages…`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::auth::{principal, with_app};
use super::error::{json_reply, respond, ApiError, ApiResult};
use super::{body, App};
use crate::livekit::Principal;
use crate::outbound::admin::{endpoint_view, secret_view, AdminError, EndpointFields};

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Invalid(why) => ApiError::bad_request(why),
            AdminError::NotFound(why) => ApiError::not_found(why),
            AdminError::Store(error) => error.into(),
        }
    }
}

fn admin_only(who: &Principal) -> Result<(), ApiError> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("administrators only"))
    }
}

fn fields(body: &[u8]) -> Result<EndpointFields, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid endpoint: {e}")))
}

pub async fn create(app: App, who: Principal, body: Bytes) -> ApiResult {
    admin_only(&who)?;
    let endpoint = app.outbound.admin().create(fields(&body)?).await?;
    tracing::info!(endpoint_id = %endpoint.id, url = %endpoint.url, by = %who.identity, "outbound endpoint registered");
    Ok(json_reply(&secret_view(&endpoint), StatusCode::CREATED))
}

pub async fn list(app: App, who: Principal) -> ApiResult {
    admin_only(&who)?;
    let endpoints: Vec<_> = app
        .store
        .endpoints()
        .await?
        .iter()
        .map(endpoint_view)
        .collect();
    Ok(json_reply(
        &json!({ "endpoints": endpoints }),
        StatusCode::OK,
    ))
}

pub async fn get(app: App, who: Principal, id: String) -> ApiResult {
    admin_only(&who)?;
    let endpoint = app.outbound.admin().get(&id).await?;
    Ok(json_reply(&endpoint_view(&endpoint), StatusCode::OK))
}

pub async fn update(app: App, who: Principal, id: String, body: Bytes) -> ApiResult {
    admin_only(&who)?;
    let endpoint = app.outbound.admin().update(&id, fields(&body)?).await?;
    tracing::info!(endpoint_id = %id, by = %who.identity, "outbound endpoint changed");
    app.outbound.kick();
    Ok(json_reply(&endpoint_view(&endpoint), StatusCode::OK))
}

pub async fn delete(app: App, who: Principal, id: String) -> ApiResult {
    admin_only(&who)?;
    app.outbound.admin().delete(&id).await?;
    tracing::info!(endpoint_id = %id, by = %who.identity, "outbound endpoint deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn rotate_secret(app: App, who: Principal, id: String) -> ApiResult {
    admin_only(&who)?;
    let endpoint = app.outbound.admin().rotate_secret(&id).await?;
    tracing::info!(endpoint_id = %id, by = %who.identity, "outbound endpoint secret rotated");
    Ok(json_reply(&secret_view(&endpoint), StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    status: Option<String>,
    limit: Option<i64>,
}

pub async fn messages(app: App, who: Principal, id: String, q: MessagesQuery) -> ApiResult {
    admin_only(&who)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let list = app.outbound.admin().messages(&id, status, limit).await?;
    Ok(json_reply(&list, StatusCode::OK))
}

pub async fn message(app: App, who: Principal, id: String) -> ApiResult {
    admin_only(&who)?;
    Ok(json_reply(
        &app.outbound.admin().message(&id).await?,
        StatusCode::OK,
    ))
}

pub async fn retry(app: App, who: Principal, id: String) -> ApiResult {
    admin_only(&who)?;
    app.outbound.admin().retry(&id).await?;
    tracing::info!(message_id = %id, by = %who.identity, "outbound webhook queued again");
    app.outbound.kick();
    Ok(json_reply(
        &json!({ "status": "queued", "id": id }),
        StatusCode::ACCEPTED,
    ))
}

/// The routes above.
pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let admin = || principal(app).and(with_app(app));
    let create_route = warp::path!("api" / "admin" / "endpoints")
        .and(warp::post())
        .and(admin())
        .and(body(app))
        .and_then(|who, app, body| async move { respond(create(app, who, body).await) });
    let list_route = warp::path!("api" / "admin" / "endpoints")
        .and(warp::get())
        .and(admin())
        .and_then(|who, app| async move { respond(list(app, who).await) });
    let get_route = warp::path!("api" / "admin" / "endpoints" / String)
        .and(warp::get())
        .and(admin())
        .and_then(|id, who, app| async move { respond(get(app, who, id).await) });
    let update_route = warp::path!("api" / "admin" / "endpoints" / String)
        .and(warp::patch())
        .and(admin())
        .and(body(app))
        .and_then(|id, who, app, body| async move { respond(update(app, who, id, body).await) });
    let delete_route = warp::path!("api" / "admin" / "endpoints" / String)
        .and(warp::delete())
        .and(admin())
        .and_then(|id, who, app| async move { respond(delete(app, who, id).await) });
    let rotate_route = warp::path!("api" / "admin" / "endpoints" / String / "rotate-secret")
        .and(warp::post())
        .and(admin())
        .and_then(|id, who, app| async move { respond(rotate_secret(app, who, id).await) });
    let messages_route = warp::path!("api" / "admin" / "endpoints" / String / "messages")
        .and(warp::get())
        .and(admin())
        .and(warp::query())
        .and_then(|id, who, app, q| async move { respond(messages(app, who, id, q).await) });
    let message_route = warp::path!("api" / "admin" / "messages" / String)
        .and(warp::get())
        .and(admin())
        .and_then(|id, who, app| async move { respond(message(app, who, id).await) });
    let retry_route = warp::path!("api" / "admin" / "messages" / String / "retry")
        .and(warp::post())
        .and(admin())
        .and_then(|id, who, app| async move { respond(retry(app, who, id).await) });
    create_route
        .or(list_route)
        .unify()
        .or(get_route)
        .unify()
        .or(update_route)
        .unify()
        .or(delete_route)
        .unify()
        .or(rotate_route)
        .unify()
        .or(messages_route)
        .unify()
        .or(message_route)
        .unify()
        .or(retry_route)
        .unify()
        .boxed()
}
