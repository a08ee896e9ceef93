//! Live messages of any size, in parts no bigger than [`PART_BYTES`].
//!
//! A message that fits is sent as it is. A bigger one (a large class's
//! snapshot, a participant with thousands of join/leave cycles) is cut into
//! `attendance.part` messages:
//!
//! ```json
//! {"type":"attendance.part","id":7,"part":1,"parts":3,"data":"{\"type\":\"attendance.snap"}
//! ```
//!
//! `id` names the message (new for each one on a socket), `part` counts from
//! 1 to `parts`, and the `data` of parts 1..=`parts`, concatenated, is the
//! message's JSON text. Parts of one message are sent back to back, never
//! interleaved with another message.

use serde::Serialize;

/// The largest live message the server sends, parts included.
pub const PART_BYTES: usize = 64 * 1024;
/// Room for the part's own fields around `data`.
const ENVELOPE_BYTES: usize = 256;

#[derive(Serialize)]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    part: usize,
    parts: usize,
    data: &'a str,
}

/// Bytes `c` takes inside a JSON string, as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// `text` as it goes on the wire: itself when it fits in [`PART_BYTES`],
/// else as `attendance.part` messages numbered `id`.
pub fn split(text: &str, id: u64) -> Vec<String> {
    if text.len() <= PART_BYTES {
        return vec![text.to_string()];
    }
    let budget = PART_BYTES - ENVELOPE_BYTES;
    let mut slices = Vec::with_capacity(text.len() / budget + 2);
    let (mut start, mut size) = (0, 0);
    for (i, c) in text.char_indices() {
        let cost = escaped_len(c);
        if size + cost > budget {
            slices.push(&text[start..i]);
            (start, size) = (i, 0);
        }
        size += cost;
    }
    slices.push(&text[start..]);
    let parts = slices.len();
    slices
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            serde_json::to_string(&Part {
                kind: "attendance.part",
                id,
                part: i + 1,
                parts,
                data,
            })
            .expect("serializable")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn small_messages_go_as_they_are() {
        let text = r#"{"type":"attendance.snapshot","participants":[]}"#;
        assert_eq!(split(text, 1), vec![text.to_string()]);
        let exactly = "x".repeat(PART_BYTES);
        assert_eq!(split(&exactly, 1), vec![exactly.clone()]);
    }

    #[test]
    fn big_messages_come_back_whole_from_parts_that_fit() {
        // Quotes and backslashes double when escaped; non-ASCII is kept.
        let row = r#"{"identity":"zoë-\"ñ\"","name":"a\\b","cycles":[{"joined_at":"2026-01-01T00:00:00Z"}]},"#;
        let text = format!(
            r#"{{"type":"attendance.snapshot","participants":[{}{{}}]}}"#,
            row.repeat(20_000)
        );
        let parts = split(&text, 42);
        assert!(parts.len() > 20, "{}", parts.len());
        let mut whole = String::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(part.len() <= PART_BYTES, "part {i}: {} bytes", part.len());
            let part: Value = serde_json::from_str(part).unwrap();
            assert_eq!(part["type"], "attendance.part");
            assert_eq!(part["id"], 42);
            assert_eq!(part["part"], i + 1);
            assert_eq!(part["parts"], parts.len());
            whole.push_str(part["data"].as_str().unwrap());
        }
        assert_eq!(whole, text);
    }
}
