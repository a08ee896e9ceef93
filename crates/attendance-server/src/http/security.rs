//! Security headers on every response: pages, API replies and errors alike.
//!
//! The pages load only their own scripts and styles (no inline code), the
//! tracker's WebAssembly (`'wasm-unsafe-eval'`), and talk to this service
//! and to a LiveKit server the student names (`ws:`/`wss:`/`https:`). Nobody
//! may frame them unless `--frame-ancestors` lists the school's LMS.

use warp::http::{header, HeaderValue};
use warp::reply::Response;

/// The headers, rendered once at start.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    content_security_policy: HeaderValue,
    /// `DENY`, unless framing is allowed for some ancestors.
    frame_options: Option<HeaderValue>,
}

/// The Content-Security-Policy for `frame_ancestors` (none: `'none'`).
pub fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = match frame_ancestors {
        [] => "'none'".to_string(),
        list => list.join(" "),
    };
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
         connect-src 'self' ws: wss: https:; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'self'"
    )
}

/// Checks one `--frame-ancestors` source: `'self'`, a scheme (`https:`) or
/// a host with optional scheme, wildcard and port
/// (`https://*.lms.example.org:8443`). Anything that could end the
/// directive or the header (`;`, `,`, quotes, spaces) is refused.
pub fn valid_frame_ancestor(source: &str) -> Result<(), String> {
    if source == "'self'" {
        return Ok(());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '*' | '-');
    if source.is_empty() || !source.chars().all(allowed) {
        return Err(format!(
            "`{source}` is not a frame-ancestors source: use e.g. https://lms.example.org, \
             https://*.example.org or 'self'"
        ));
    }
    let wildcard_host =
        (source.starts_with("*.") || source.contains("://*.")) && source.matches('*').count() == 1;
    if source.contains('*') && !wildcard_host {
        return Err(format!(
            "`{source}`: a wildcard may only start a host name (https://*.example.org)"
        ));
    }
    Ok(())
}

impl SecurityHeaders {
    pub fn new(frame_ancestors: &[String]) -> SecurityHeaders {
        let policy = content_security_policy(frame_ancestors);
        SecurityHeaders {
            content_security_policy: HeaderValue::from_str(&policy)
                .expect("frame ancestors are validated"),
            frame_options: frame_ancestors
                .is_empty()
                .then(|| HeaderValue::from_static("DENY")),
        }
    }

    pub fn apply(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            self.content_security_policy.clone(),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        match &self.frame_options {
            Some(value) => headers.insert(header::X_FRAME_OPTIONS, value.clone()),
            None => headers.remove(header::X_FRAME_OPTIONS),
        };
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_are_checked() {
        for ok in [
            "'self'",
            "https://lms.example.org",
            "https://*.school.edu",
            "https://lms.example.org:8443",
            "https:",
        ] {
            assert_eq!(valid_frame_ancestor(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "https://a.org; script-src *",
            "https://a.org,evil",
            "'unsafe-inline'",
            "https://a.org\r\nX: y",
            "*",
            "https://lms*.org",
        ] {
            assert!(valid_frame_ancestor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_forbids_framing_unless_told() {
        assert!(content_security_policy(&[]).contains("frame-ancestors 'none';"));
        let lms = content_security_policy(&["https://lms.example.org".into(), "'self'".into()]);
        assert!(lms.contains("frame-ancestors https://lms.example.org 'self';"));
        assert!(SecurityHeaders::new(&[]).frame_options.is_some());
        assert!(SecurityHeaders::new(&["'self'".into()])
            .frame_options
            .is_none());
    }
}
