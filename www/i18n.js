// Every visible string of the pages, per language, in www/i18n/<code>.js.
// The language is the one chosen with the switch (kept in localStorage), else
// the first of the browser's languages that has a file, else English.
// Adding a language: copy www/i18n/en.js to www/i18n/<code>.js, translate it,
// and name it in LANGUAGES below.
export const LANGUAGES = { en: 'English', ar: 'العربية' };
const RTL = new Set(['ar', 'fa', 'he', 'ur']);
const KEY = 'attendance-lang';

function choose() {
  let saved = null;
  try { saved = localStorage.getItem(KEY); } catch { /* private mode */ }
  if (saved && LANGUAGES[saved]) return saved;
  for (const tag of navigator.languages || [navigator.language]) {
    const code = String(tag || '').toLowerCase().split('-')[0];
    if (LANGUAGES[code]) return code;
  }
  return 'en';
}

export const lang = choose();
const english = (await import('./i18n/en.js')).default;
const strings = lang === 'en' ? english : { ...english, ...(await import(`./i18n/${lang}.js`)).default };
/** The locale for Intl: the browser's own tag when it is of this language (ar-EG, en-GB), else the code. */
export const locale = (navigator.languages || []).find((tag) => tag.toLowerCase().split('-')[0] === lang) || lang;
export const dir = RTL.has(lang) ? 'rtl' : 'ltr';

/** The string `key` with `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  const s = strings[key] ?? key;
  const text = typeof s === 'function' ? s(vars || {}) : s;
  return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
}

/** Translates `[data-i18n]` (text) and `[data-i18n-attr="attr:key;attr:key"]` under `root`. */
export function translate(root = document) {
  document.documentElement.lang = lang;
  document.documentElement.dir = dir;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const key = el.dataset.i18n;
    if (key in strings) el.textContent = t(key);
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (key in strings) el.setAttribute(attr, t(key));
    }
  }
  const title = document.querySelector('title[data-i18n]');
  if (title) document.title = title.textContent;
}

/** The language switch: a labelled select in the page's top bar. */
export function languageSwitch() {
  const bar = document.querySelector('.topbar');
  if (!bar || bar.querySelector('#lang')) return;
  const wrap = document.createElement('div');
  wrap.className = 'lang';
  const label = document.createElement('label');
  label.htmlFor = 'lang';
  label.className = 'visually-hidden';
  label.textContent = t('language');
  const select = document.createElement('select');
  select.id = 'lang';
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = new Option(name, code, code === lang, code === lang);
    option.lang = code;
    select.append(option);
  }
  select.addEventListener('change', () => {
    try { localStorage.setItem(KEY, select.value); } catch { /* this load only */ }
    location.reload();
  });
  wrap.append(label, select);
  bar.append(wrap);
}

translate();
languageSwitch();
