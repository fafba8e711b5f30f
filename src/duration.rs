//! Durations as profiles write them: `90s`, `15m`, `2h`, `1d` (and `500ms`
//! where sub-second makes sense). Anything else is an error that says how to
//! write it, so `15 minutes` never silently becomes something else.

use std::time::Duration;

/// Parse `90s`, `15m`, `2h`, `1d`, `500ms`, or a combination like `1h30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (write 90s, 15m, 2h)".into());
    }
    let mut total_ms: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?} (write 90s, 15m, 2h)"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {text:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if rest.is_empty() => {
                return Err(format!("duration {text:?} has no unit (write {n}s, {n}m or {n}h)"));
            }
            _ => return Err(format!("invalid duration {text:?} (write 90s, 15m, 2h)")),
        };
        total_ms = total_ms
            .checked_add(n * ms_per)
            .filter(|v| *v <= u64::MAX as u128)
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Render a duration compactly for humans: `45s`, `12m`, `3h05m`, `2d4h`.
pub fn human(d: Duration) -> String {
    human_secs(d.as_secs() as i64)
}

/// Same as [`human`] for a signed number of seconds (negative → `0s`).
pub fn human_secs(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h{:02}m", s / 3600, m)
            }
        }
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn rejects_prose_and_bare_numbers() {
        assert!(parse("15 minutes").unwrap_err().contains("write 90s"));
        assert!(parse("15").unwrap_err().contains("no unit"));
        assert!(parse("").is_err());
        assert!(parse("3w").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn humanises() {
        assert_eq!(human_secs(5), "5s");
        assert_eq!(human_secs(125), "2m");
        assert_eq!(human_secs(3600), "1h");
        assert_eq!(human_secs(3660 + 240), "1h05m");
        assert_eq!(human_secs(90000), "1d1h");
        assert_eq!(human_secs(-3), "0s");
    }
}
