//! Reading what requests carry: names in paths, time ranges, time zones,
//! formats, numbers in bodies; and CSV replies.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use warp::http::{header, HeaderValue};
use warp::reply::{Reply, Response};

use super::error::ApiError;

/// A room name or identity taken from a path segment. LiveKit allows any
/// UTF-8 (spaces, slashes, Arabic, emoji), so the segment is percent-decoded
/// (`%2F` included) into the name LiveKit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl FromStr for Name {
    type Err = std::str::Utf8Error;

    fn from_str(segment: &str) -> Result<Self, Self::Err> {
        Ok(Name(
            percent_decode_str(segment).decode_utf8()?.into_owned(),
        ))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

/// Longest room name or identity taken. LiveKit sets no small limit; this
/// one keeps a live notification (8000 bytes in PostgreSQL) well clear.
pub const MAX_NAME_BYTES: usize = 1024;

pub fn check_room(room: &str) -> Result<(), ApiError> {
    if room.is_empty() || room.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "room name must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A whole number that fits the field.
pub fn field(name: &str, value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .map_err(|_| ApiError::bad_request(format!("{name} must be a non-negative whole number")))
}

pub fn percent(name: &str, value: i64) -> Result<u32, ApiError> {
    match field(name, value)? {
        v if v <= 100 => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be between 0 and 100"
        ))),
    }
}

/// A lesson's or class's `grade_points`, set over the school's points;
/// `None` (not given): the school's.
pub fn grade_points_over(
    school: attendance_rules::GradePoints,
    change: Option<attendance_rules::GradePointsChange>,
) -> Result<Option<attendance_rules::GradePoints>, ApiError> {
    change
        .map(|change| school.with(&change))
        .transpose()
        .map_err(ApiError::bad_request)
}

pub fn parse_zone(name: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        ApiError::bad_request(format!(
            "unknown time zone `{name}`; use an IANA name such as Africa/Cairo"
        ))
    })
}

/// `?tz=`, when given.
pub fn requested_zone(tz: Option<&str>) -> Result<Option<Tz>, ApiError> {
    tz.filter(|z| !z.is_empty()).map(parse_zone).transpose()
}

/// An instant or a day (`2026-11-25`, taken as UTC midnight).
fn parse_bound(
    name: &str,
    text: Option<&str>,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| ApiError::bad_request(format!("{name} must be RFC 3339 or YYYY-MM-DD")))
}

/// `?from=&to=`, open-ended when left out.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let from = parse_bound("from", from, DateTime::<Utc>::MIN_UTC)?;
    let to = parse_bound("to", to, DateTime::<Utc>::MAX_UTC)?;
    if from > to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    Ok((from, to))
}

/// `?format=csv` or `Accept: text/csv`.
pub fn wants_csv(format: Option<&str>, accept: Option<&str>) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        None => Ok(accept.is_some_and(|a| a.contains("text/csv"))),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format `{other}`; use json or csv"
        ))),
    }
}

/// A CSV download named `{name}.csv`. The name keeps any script (Arabic,
/// spaces) for browsers that read RFC 6266's `filename*`, with an ASCII
/// fallback for those that do not.
pub fn csv_reply(text: String, name: &str) -> Response {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let utf8 = utf8_percent_encode(&format!("{name}.csv"), FILENAME_ESCAPES).to_string();
    let mut response =
        warp::reply::with_header(text, header::CONTENT_TYPE, "text/csv; charset=utf-8")
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}.csv\"; filename*=UTF-8''{utf8}"
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Everything but RFC 5987's `attr-char` is percent-encoded in `filename*`.
const FILENAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_decoded_slashes_included() {
        let name: Name = "%D8%B1%D9%8A%D8%A7%D8%B6%D9%8A%D8%A7%D8%AA%20101"
            .parse()
            .unwrap();
        assert_eq!(name.0, "رياضيات 101");
        assert_eq!("a%2Fb%20c".parse::<Name>().unwrap().0, "a/b c");
        assert_eq!("plain-name".parse::<Name>().unwrap().0, "plain-name");
        assert!("%FF".parse::<Name>().is_err());
    }

    #[test]
    fn csv_file_names_keep_their_script() {
        let response = csv_reply(String::new(), "attendance-رياضيات 101");
        let disposition = response.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap();
        assert_eq!(
            disposition,
            "attachment; filename=\"attendance-________101.csv\"; \
             filename*=UTF-8''attendance-%D8%B1%D9%8A%D8%A7%D8%B6%D9%8A%D8%A7%D8%AA%20101.csv"
        );
    }
}
