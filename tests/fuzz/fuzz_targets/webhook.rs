//! The webhook front door: verification and parsing must never panic on any
//! header and body, and must only accept what was signed with our secret.
#![no_main]

use attendance_server::livekit::KeyRing;
use attendance_server::livekit::facts_of;
use attendance_server::livekit::webhook::{verify, WebhookEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (authorization, body) = input;
    let keys = KeyRing::parse_keys("fuzzkey: fuzz-secret-fuzz-secret-fuzz-secret").unwrap();
    // A forged header must never verify (the fuzzer cannot sign).
    if let Ok(key) = verify(&keys, Some(authorization), body) {
        panic!("accepted an unsigned webhook for key {key}");
    }
    // A correctly signed body goes through parsing and processing rules.
    let token = keys.sign_webhook(body).unwrap();
    assert!(verify(&keys, Some(&token), body).is_ok());
    if let Ok(event) = WebhookEvent::parse(body) {
        let _ = facts_of(&event);
    }
});
