//! The HTTP surface. One route table ([`routes`]); authentication as a filter
//! that yields the caller's [`Principal`](crate::livekit::Principal)
//! ([`auth`]); one error type mapped to status codes ([`error`]); a file per
//! resource.

pub mod app;
pub mod assets;
pub mod auth;
pub mod classes;
pub mod corrections;
pub mod demo;
pub mod endpoints;
pub mod error;
pub mod heartbeats;
pub mod lessons;
mod live_admission;
pub mod live_socket;
mod live_upgrade;
pub mod media;
pub mod ops;
pub mod params;
pub mod reports;
pub mod rosters;
pub mod security;
pub mod sessions;
pub mod webhooks;

use std::convert::Infallible;

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::Filter;

pub use app::{App, Settings};
use auth::{principal, with_app};
use error::respond;
use lessons::LessonQuery;
use params::Name;

type Route = BoxedFilter<(Response,)>;

/// Every route of the service.
pub fn routes(app: App) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let security = security::SecurityHeaders::new(&app.settings.frame_ancestors);
    ops_routes(&app)
        .or(webhook_routes(&app))
        .unify()
        .or(session_routes(&app))
        .unify()
        .or(attendance_routes(&app))
        .unify()
        .or(admin_routes(&app))
        .unify()
        .or(endpoints::routes(&app))
        .unify()
        .or(class_routes(&app))
        .unify()
        .or(live_socket::route(app.clone()))
        .unify()
        .or(demo::routes(app.clone()))
        .unify()
        .or(assets::pages(app.settings.www_dir.clone()))
        .unify()
        .recover(error::recover)
        .unify()
        .map(move |response| security.apply(response))
        .with(warp::trace(request_span))
}

/// The span every request is logged in: method and path only. Never the
/// query string, the `Referer` or any other header: they may carry a
/// token (old live-socket clients send `?access_token=`).
fn request_span(info: warp::trace::Info<'_>) -> tracing::Span {
    tracing::info_span!("request", method = %info.method(), path = %info.path())
}

/// `?session=ID`: the lesson a `/api/sessions/{room}/…` route is about
/// (the room's current one without it).
/// A malformed id is refused as such (400), whatever other route was tried.
fn lesson() -> impl Filter<Extract = (LessonQuery,), Error = warp::Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            serde_urlencoded::from_str::<LessonQuery>(&raw).map_err(|e| {
                warp::reject::custom(error::Refusal(error::ApiError::bad_request(format!(
                    "session must be a lesson id: {e}"
                ))))
            })
        })
}

/// A request body of at most `--max-body-bytes`.
fn body(app: &App) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(app.settings.max_body_bytes).and(warp::body::bytes())
}

fn ops_routes(app: &App) -> Route {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with_app(app))
        .and_then(|app| async move { respond(ops::healthz(app).await) });
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_app(app))
        .and_then(|app| async move { respond(ops::readyz(app).await) });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app))
        .and_then(|app| async move { respond(ops::metrics(app).await) });
    healthz.or(readyz).unify().or(metrics).unify().boxed()
}

fn webhook_routes(app: &App) -> Route {
    warp::path!("webhooks" / "livekit")
        .and(warp::post())
        .and(with_app(app))
        .and(warp::header::optional::<String>("authorization"))
        .and(body(app))
        .and_then(
            |app, auth, body| async move { respond(webhooks::receive(app, auth, body).await) },
        )
        .boxed()
}

/// Sessions, rosters and heartbeats: `/api/sessions/…`.
fn session_routes(app: &App) -> Route {
    let put = warp::path!("api" / "sessions" / Name)
        .and(warp::put())
        .and(lesson())
        .and(body(app))
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, body, who, app| async move {
            respond(sessions::put_session(app, who, room.0, q, body).await)
        });
    let get = warp::path!("api" / "sessions" / Name)
        .and(warp::get())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, who, app| async move {
            respond(sessions::get_session(app, who, room.0, q).await)
        });
    let list = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and_then(|who, app, q| async move { respond(sessions::list_sessions(app, who, q).await) });
    let put_roster = warp::path!("api" / "sessions" / Name / "roster")
        .and(warp::put())
        .and(lesson())
        .and(body(app))
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, body, who, app| async move {
            respond(rosters::put_roster(app, who, room.0, q, body).await)
        });
    let get_roster = warp::path!("api" / "sessions" / Name / "roster")
        .and(warp::get())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, who, app| async move {
            respond(rosters::get_roster(app, who, room.0, q).await)
        });
    let heartbeat = warp::path!("api" / "sessions" / Name / "heartbeat")
        .and(warp::post())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, who, app| async move {
            respond(heartbeats::post(app, who, room.0, q).await)
        });
    put.or(get)
        .unify()
        .or(list)
        .unify()
        .or(put_roster)
        .unify()
        .or(get_roster)
        .unify()
        .or(heartbeat)
        .unify()
        .boxed()
}

/// Reports and corrections: `/api/sessions/{room}/attendance…`, `/api/attendance`.
fn attendance_routes(app: &App) -> Route {
    let report = warp::path!("api" / "sessions" / Name / "attendance")
        .and(warp::get())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and(warp::header::optional::<String>("accept"))
        .and_then(|room: Name, lq, who, app, q, accept| async move {
            respond(reports::session_report(app, who, room.0, lq, q, accept).await)
        });
    let one = warp::path!("api" / "sessions" / Name / "attendance" / Name)
        .and(warp::get())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, identity: Name, q, who, app| async move {
            respond(reports::participant_report(app, who, room.0, identity.0, q).await)
        });
    let set = warp::path!("api" / "sessions" / Name / "attendance" / Name / "override")
        .and(warp::put())
        .and(lesson())
        .and(body(app))
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, identity: Name, q, body, who, app| async move {
            respond(corrections::set_override(app, who, room.0, identity.0, q, body).await)
        });
    let remove = warp::path!("api" / "sessions" / Name / "attendance" / Name / "override")
        .and(warp::delete())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and_then(|room: Name, identity: Name, lq, who, app, q| async move {
            respond(corrections::remove_override(app, who, room.0, identity.0, lq, q).await)
        });
    let room_audit = warp::path!("api" / "sessions" / Name / "audit")
        .and(warp::get())
        .and(lesson())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|room: Name, q, who, app| async move {
            respond(corrections::room_audit(app, who, room.0, q).await)
        });
    let history = warp::path!("api" / "attendance")
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and(warp::header::optional::<String>("accept"))
        .and_then(|who, app, q, accept| async move {
            respond(reports::history(app, who, q, accept).await)
        });
    report
        .or(one)
        .unify()
        .or(set)
        .unify()
        .or(remove)
        .unify()
        .or(room_audit)
        .unify()
        .or(history)
        .unify()
        .boxed()
}

/// Classes with recurring lessons: `/api/classes…`.
fn class_routes(app: &App) -> Route {
    let create = warp::path!("api" / "classes")
        .and(warp::post())
        .and(principal(app))
        .and(with_app(app))
        .and(body(app))
        .and_then(|who, app, body| async move { respond(classes::create(app, who, body).await) });
    let list = warp::path!("api" / "classes")
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and_then(|who, app, q| async move { respond(classes::list(app, who, q).await) });
    let get = warp::path!("api" / "classes" / i64)
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|id, who, app| async move { respond(classes::get(app, who, id).await) });
    let update = warp::path!("api" / "classes" / i64)
        .and(warp::put())
        .and(principal(app))
        .and(with_app(app))
        .and(body(app))
        .and_then(|id, who, app, body| async move {
            respond(classes::update(app, who, id, body).await)
        });
    let delete = warp::path!("api" / "classes" / i64)
        .and(warp::delete())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|id, who, app| async move { respond(classes::delete(app, who, id).await) });
    let cancel = warp::path!("api" / "classes" / i64 / "cancellations")
        .and(warp::post())
        .and(principal(app))
        .and(with_app(app))
        .and(body(app))
        .and_then(|id, who, app, body| async move {
            respond(classes::cancel(app, who, id, Some(body), None).await)
        });
    let restore = warp::path!("api" / "classes" / i64 / "cancellations" / String)
        .and(warp::delete())
        .and(principal(app))
        .and(with_app(app))
        .and_then(|id, date, who, app| async move {
            respond(classes::cancel(app, who, id, None, Some(date)).await)
        });
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(cancel)
        .unify()
        .or(restore)
        .unify()
        .boxed()
}

/// Administrators: `/api/admin/…`.
fn admin_routes(app: &App) -> Route {
    let audit = warp::path!("api" / "admin" / "audit")
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and_then(|who, app, q| async move { respond(corrections::audit(app, who, q).await) });
    let webhooks = warp::path!("api" / "admin" / "webhooks")
        .and(warp::get())
        .and(principal(app))
        .and(with_app(app))
        .and(warp::query())
        .and_then(|who, app, q| async move { respond(webhooks::list(app, who, q).await) });
    let replay = warp::path!("api" / "admin" / "webhooks" / String / "replay")
        .and(warp::post())
        .and(principal(app))
        .and(with_app(app))
        .and_then(
            |id: String, who, app| async move { respond(webhooks::replay(app, who, id).await) },
        );
    audit.or(webhooks).unify().or(replay).unify().boxed()
}
