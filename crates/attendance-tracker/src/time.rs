//! RFC 3339 timestamps, read without chrono's general parser: the server only
//! sends `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, and a small reader keeps
//! the wasm small. Sub-millisecond digits are dropped (the rules count in ms).

use chrono::{DateTime, Utc};

pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(parse_ms(text)?)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn parse_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        match i - start {
            0 => return None,
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }
    let offset_seconds = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = num(i + 1, i + 3)?;
            let (minutes, end) = if b.get(i + 3) == Some(&b':') {
                (num(i + 4, i + 6)?, i + 6)
            } else {
                (num(i + 3, i + 5)?, i + 5)
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            i = end;
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, in Chromium, in the wasm build.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::parse;
    use chrono::{DateTime, Utc};

    #[test]
    fn agrees_with_chrono() {
        for text in [
            "2026-11-25T11:00:00Z",
            "2026-11-25T11:00:00.123Z",
            "2026-11-25T11:00:00.1Z",
            "2026-11-25T11:00:00.123456789Z",
            "2026-11-25T12:30:00+01:30",
            "2026-11-25T09:00:00-02:00",
            "2024-02-29T23:59:59Z",
            "2000-03-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "2100-12-31t10:00:00z",
        ] {
            let want: DateTime<Utc> = text.parse().unwrap();
            let want = DateTime::from_timestamp_millis(want.timestamp_millis()).unwrap();
            assert_eq!(parse(text), Some(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "2026-11-25",
            "2026-11-25T11:00:00",
            "2026-13-25T11:00:00Z",
            "2025-02-29T11:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T11:00:00.Z",
            "2026-11-25T11:00:00Zjunk",
            "2026-11-25T11:00:00+1",
            "２026-11-25T11:00:00Z",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
