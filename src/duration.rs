//! Human durations as written in zone files, the config file and the API: `"200ms"`, `"10s"`,
//! `"1m30s"`, `"2h"`. One parser so that every input speaks the same dialect (Consul's, which is
//! Go's `time.ParseDuration` without fractions).

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write e.g. \"500ms\", \"10s\", \"1m30s\")")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `"1h2m3s4ms"`-style durations. A bare `"0"` is zero; every other number needs a unit
/// (`ns`, `us`, `ms`, `s`, `m`, `h`), so that `"10"` is never silently read as ten nanoseconds.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ns" => Duration::from_nanos(value),
            "us" | "µs" => Duration::from_micros(value),
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(|| err("too large"))?),
            "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(|| err("too large"))?),
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total = total.checked_add(part).ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way `parse` reads it back (`"1m30s"`, `"250ms"`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() { "0s".into() } else { format!("{}us", d.as_micros()) };
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_written_forms() {
        let cases = [
            ("200ms", Duration::from_millis(200)),
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("0", Duration::ZERO),
            ("1s500ms", Duration::from_millis(1500)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        for text in ["", "10", "s", "10x", "-1s", "1.5s", "ms10"] {
            assert!(parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["250ms", "5s", "1m30s", "2h", "1h0m1s"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }
}
