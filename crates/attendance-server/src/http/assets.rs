//! The pages and the built tracker. They are embedded in the binary, so
//! `attendance-server serve` works from any directory; `--www-dir` serves a
//! folder instead (editing pages without rebuilding).

use std::path::PathBuf;

use rust_embed::RustEmbed;
use warp::http::{header, HeaderValue, StatusCode};
use warp::path::Tail;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

#[derive(RustEmbed)]
#[folder = "../../www"]
#[exclude = "*.map"]
struct Pages;

/// `GET` any page: from `www_dir` when given, else from the binary.
pub fn pages(
    www_dir: Option<PathBuf>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let embedded = warp::get()
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(|tail: Tail, etag: Option<String>| async move {
            embedded(tail.as_str(), etag.as_deref()).ok_or_else(warp::reject::not_found)
        });
    match www_dir {
        Some(dir) => warp::fs::dir(dir)
            .map(Reply::into_response)
            .or(embedded)
            .unify()
            .boxed(),
        None => embedded.boxed(),
    }
}

fn embedded(path: &str, if_none_match: Option<&str>) -> Option<Response> {
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    };
    let file = Pages::get(&path)?;
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut response = if if_none_match == Some(etag.as_str()) {
        let mut response = Response::default();
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(file.data.into_owned().into())
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Pages and the tracker change together: revalidate, never serve stale.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_built_in() {
        for page in ["", "meeting.html", "dashboard.html", "common.js"] {
            let response = embedded(page, None).unwrap_or_else(|| panic!("{page} missing"));
            assert_eq!(response.status(), StatusCode::OK);
        }
        let page = embedded("meeting.html", None).unwrap();
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
        let etag = page.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = embedded("meeting.html", Some(&etag)).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(embedded("nope.html", None).is_none());
        assert!(embedded("../Cargo.toml", None).is_none());
    }
}
