//! Reads the identity (`sub`) out of a LiveKit access token. The signature is
//! the server's business: the tracker only needs to know whose numbers to ask
//! for when it falls back to polling.

use js_sys::{Reflect, JSON};
use wasm_bindgen::JsValue;

/// The token's `sub` claim, if the token looks like a JWT and has one.
pub(crate) fn subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let json = String::from_utf8(bytes).ok()?;
    let claims = JSON::parse(&json).ok()?;
    Reflect::get(&claims, &JsValue::from_str("sub"))
        .ok()?
        .as_string()
        .filter(|s| !s.is_empty())
}

/// Decodes unpadded (or padded) base64url, also accepting the standard
/// alphabet's `+` and `/`.
pub(crate) fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in input.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, in Chromium, in the wasm build.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::base64url_decode;

    #[test]
    fn decodes_base64url_without_padding() {
        assert_eq!(
            base64url_decode("eyJzdWIiOiJhIn0").unwrap(),
            b"{\"sub\":\"a\"}"
        );
        assert_eq!(base64url_decode("_-8").unwrap(), vec![0xff, 0xef]);
        assert_eq!(base64url_decode("TWE=").unwrap(), b"Ma");
        assert!(base64url_decode("a b").is_none());
    }
}
