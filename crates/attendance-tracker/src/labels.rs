//! The words and number formats of the attendance card, from the page.
//!
//! The page passes `text`: a function `(key, vars) => string` (such as the
//! pages' `t` from `www/i18n.js`) or an object of templates with `{name}`
//! placeholders, and `format`: `{ clock(seconds), percent(value), time(ms) }`
//! to write numbers and times for its locale. Whatever the page leaves out
//! is written in English with ASCII digits, so a page embedding the tracker
//! without translations still shows a readable card. The English words are
//! the pages' own (`www/i18n/en.js`), imported beside the bundle; the lookup
//! lives in JS (strings cost less there than in the wasm).
//! Placeholders: `{time}`, `{status}`, `{since}`.

use wasm_bindgen::prelude::*;

use crate::js::get;

#[wasm_bindgen(inline_js = "
// English for whatever the page leaves out: the pages' own words
// (www/i18n/en.js, beside www/pkg/), so the card's English has one source.
// A page that imports en.js itself (www/i18n.js does) shares the very module.
let EN = {};
try {
  EN = (await import(new URL('../../../i18n/en.js', import.meta.url))).default;
} catch (e) {
  console.warn('attendance: no English words (i18n/en.js) beside the tracker', e);
}
const fill = (s, vars) => s.replace(/\\{(\\w+)\\}/g, (m, k) => (vars[k] === undefined ? m : vars[k]));
const two = (n) => String(n).padStart(2, '0');
const DEFAULT = {
  clock: (s) => {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const ms = two(Math.floor(s / 60) % 60) + ':' + two(s % 60);
    return h > 0 ? h + ':' + ms : ms;
  },
  percent: (p) => (Math.round(p * 10) / 10).toFixed(1) + '%',
  time: (ms) => { const d = new Date(ms); return two(d.getHours()) + ':' + two(d.getMinutes()); },
};
export function formatted(format, kind, value) {
  try {
    const f = format && format[kind];
    if (typeof f === 'function') {
      const s = f(value);
      if (typeof s === 'string') return s;
    }
  } catch (e) { console.warn('attendance: format.' + kind + ' failed', e); }
  return DEFAULT[kind](value);
}
export function show(el, text, key, time, status, since, value) {
  const s = label(text, key, time, status, since);
  if (el.textContent !== s) el.textContent = s;
  if (value && el.getAttribute('data-value') !== value) el.setAttribute('data-value', value);
}
export function label(text, key, time, status, since) {
  const vars = { time, status, since };
  let s;
  try {
    if (typeof text === 'function') s = text(key, vars);
    else if (text && typeof text[key] === 'string') s = fill(text[key], vars);
  } catch (e) { console.warn('attendance: text(' + key + ') failed', e); }
  return typeof s === 'string' && s !== key ? s : fill(EN[key] ?? key, vars);
}
")]
extern "C" {
    fn label(text: &JsValue, key: &str, time: &str, status: &str, since: &str) -> String;
    fn formatted(format: &JsValue, kind: &str, value: f64) -> String;
    fn show(
        el: &web_sys::Element,
        text: &JsValue,
        key: &str,
        time: &str,
        status: &str,
        since: &str,
        value: &str,
    );
}

/// Values of the placeholders a text may use.
#[derive(Default, Clone, Copy)]
pub(crate) struct Vars<'a> {
    pub(crate) time: &'a str,
    pub(crate) status: &'a str,
    pub(crate) since: &'a str,
}

pub(crate) struct Labels {
    /// A function `(key, vars) => string`, an object of templates, or
    /// undefined.
    text: JsValue,
    /// `{ clock, percent, time }`, any of them, or undefined.
    format: JsValue,
}

impl Labels {
    pub(crate) fn from_options(options: &JsValue) -> Labels {
        Labels {
            text: get(options, "text"),
            format: get(options, "format"),
        }
    }

    /// The page's text for `key`, else English.
    pub(crate) fn get(&self, key: &str) -> String {
        self.with(key, Vars::default())
    }

    /// The page's text for `key` with its placeholders filled, else English.
    pub(crate) fn with(&self, key: &str, vars: Vars<'_>) -> String {
        label(&self.text, key, vars.time, vars.status, vars.since)
    }

    /// Shows the text for `key` in `el` (and `value` as its `data-value`
    /// unless empty), touching the element only when they changed.
    pub(crate) fn show(&self, el: &web_sys::Element, key: &str, vars: Vars<'_>, value: &str) {
        show(
            el,
            &self.text,
            key,
            vars.time,
            vars.status,
            vars.since,
            value,
        );
    }

    /// A duration in seconds (`12:30`, `1:02:03` by default).
    pub(crate) fn clock(&self, seconds: i64) -> String {
        formatted(&self.format, "clock", seconds as f64)
    }

    /// A percentage as the rules round it (`25.0%` by default).
    pub(crate) fn percent(&self, value: f64) -> String {
        formatted(&self.format, "percent", value)
    }

    /// An instant (unix ms) as a time of day (`10:48` by default, in the
    /// browser's zone).
    pub(crate) fn time(&self, ms: i64) -> String {
        formatted(&self.format, "time", ms as f64)
    }
}
