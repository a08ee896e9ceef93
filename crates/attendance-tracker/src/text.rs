//! Small, allocation-light formatting for the numbers shown every second
//! (no `format!` machinery in the hot path).

/// `MM:SS` under an hour, `H:MM:SS` from an hour on.
pub(crate) fn clock(total_seconds: i64) -> String {
    let s = total_seconds.max(0);
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::with_capacity(8);
    if h > 0 {
        push_int(&mut out, h);
        out.push(':');
    }
    push_two(&mut out, m);
    out.push(':');
    push_two(&mut out, sec);
    out
}

/// `25.0%`: one decimal, as the rules round it.
pub(crate) fn percent(value: f64) -> String {
    let tenths = (value * 10.0).round() as i64;
    let mut out = String::with_capacity(6);
    push_int(&mut out, tenths / 10);
    out.push('.');
    push_int(&mut out, tenths % 10);
    out.push('%');
    out
}

/// `HH:MM` in 24-hour form.
pub(crate) fn hour_minute(hours: u32, minutes: u32) -> String {
    let mut out = String::with_capacity(5);
    push_two(&mut out, i64::from(hours));
    out.push(':');
    push_two(&mut out, i64::from(minutes));
    out
}

fn push_two(out: &mut String, n: i64) {
    if n < 10 {
        out.push('0');
    }
    push_int(out, n);
}

pub(crate) fn push_int(out: &mut String, n: i64) {
    let mut n = n.max(0) as u64;
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(d as char);
    }
}

#[cfg(test)]
mod tests {
    // The same tests run natively and, in Chromium, in the wasm build.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn formats() {
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(754), "12:34");
        assert_eq!(clock(3600), "1:00:00");
        assert_eq!(clock(5405), "1:30:05");
        assert_eq!(percent(25.0), "25.0%");
        assert_eq!(percent(99.94), "99.9%");
        assert_eq!(percent(100.0), "100.0%");
        assert_eq!(hour_minute(9, 5), "09:05");
    }
}
