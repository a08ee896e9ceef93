//! Hardening: security headers, tokens, limits on slow and silent clients,
//! live messages of any class size.

#[macro_use]
mod common;

use common::*;

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(Db::Sqlite).await;
    let teacher = access_token("t", "r", Grant::Teacher);
    let responses = [
        (
            "page",
            server
                .client
                .get(server.url("/dashboard.html"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "api",
            server
                .client
                .get(server.url("/healthz"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "api with a token",
            server.get("/api/sessions/r/roster", &teacher).await,
        ),
        (
            "refused",
            server
                .client
                .get(server.url("/api/sessions/r"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "not found",
            server
                .client
                .get(server.url("/nope.html"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "WebSocket as plain HTTP",
            server.get("/api/sessions/r/live", &teacher).await,
        ),
    ];
    for (what, response) in &responses {
        let csp =
            header(response, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
        for directive in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(
            header(response, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(response, "referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(header(response, "x-frame-options"), Some("DENY"), "{what}");
    }
    assert_eq!(responses[3].1.status(), 401);
    assert_eq!(responses[4].1.status(), 404);

    // A school embedding the dashboard in its LMS.
    let embedded = TestServer::start_with(
        Db::Sqlite,
        &[
            "--frame-ancestors",
            "https://lms.example.org https://*.school.edu",
        ],
    )
    .await;
    let page = embedded
        .client
        .get(embedded.url("/dashboard.html"))
        .send()
        .await
        .unwrap();
    let csp = header(&page, "content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors https://lms.example.org https://*.school.edu;"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-frame-options"), None);
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));

    // A source that would break out of the header is refused at start.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--frame-ancestors",
            "https://a.org; script-src *",
        ])
        .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("frame-ancestors"));
}
