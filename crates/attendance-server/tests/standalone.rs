//! One self-contained binary: copied into an empty directory and started
//! there without `--www-dir`, it serves every page and the built tracker.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn a_copied_binary_serves_the_pages_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("attendance-server");
    std::fs::copy(env!("CARGO_BIN_EXE_attendance-server"), &binary).unwrap();
    let mut child = Command::new(&binary)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "LIVEKIT_KEYS",
            "key: a-long-enough-secret-for-a-standalone-test",
        )
        .env_remove("ATTENDANCE_WWW_DIR")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    let client = reqwest::Client::new();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/meeting.html", "text/html"),
        ("/dashboard.html", "text/html"),
        ("/pkg/attendance_tracker.js", "text/javascript"),
        ("/pkg/attendance_tracker_bg.wasm", "application/wasm"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            content_type,
            "{path}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }
    let missing = client
        .get(format!("{base}/nope.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The default database is created where the binary was started.
    assert!(dir.path().join("attendance.db").exists());
    let _ = child.kill();
    let _ = child.wait();
}
