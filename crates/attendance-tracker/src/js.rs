//! Reading and writing plain JS objects, property by property.
//!
//! Not `serde-wasm-bindgen`, for size: see the crate docs for the figures.

use chrono::{DateTime, Utc};
use js_sys::{Date, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::time;

pub(crate) fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A timestamp field: null/absent is `None`, anything unreadable an error.
pub(crate) fn time_field(object: &JsValue, key: &str) -> Result<Option<DateTime<Utc>>, JsValue> {
    let value = get(object, key);
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value
        .as_string()
        .and_then(|text| time::parse(&text))
        .map(Some)
        .ok_or_else(|| bad_field(key))
}

pub(crate) fn bad_field(key: &str) -> JsValue {
    let mut message = String::from("attendance: bad or missing field ");
    message.push_str(key);
    js_sys::TypeError::new(&message).into()
}

/// An instant as `Date.prototype.toISOString` writes it, or null.
pub(crate) fn iso(at: Option<DateTime<Utc>>) -> JsValue {
    match at {
        Some(at) => Date::new(&JsValue::from_f64(at.timestamp_millis() as f64))
            .to_iso_string()
            .into(),
        None => JsValue::NULL,
    }
}

/// Sets properties of an object, one call per property.
pub(crate) struct Out<'a>(pub(crate) &'a Object);

impl Out<'_> {
    // Not generic over `Into<JsValue>`: one copy of this code, not one per type.
    pub(crate) fn set(&self, key: &str, value: JsValue) -> &Self {
        let _ = Reflect::set(self.0, &JsValue::from_str(key), &value);
        self
    }
}
