//! How values look on screen: durations, local times, shortened ids and one-line excerpts.

use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use covalent::Uuid;

/// The format of STARTED in `covalent list`.
pub const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// A duration for people: `171µs`, `12ms`, `1.2s`, `3m 4s`, `2h 5m`, `3d 4h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_millis(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        // Truncate, so 59.97s does not show as 60.0s.
        format!("{}.{}s", secs, d.subsec_millis() / 100)
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs < 86400 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d {}h", secs / 86400, secs % 86400 / 3600)
    }
}

/// The time from `start` to `end`, or to now when it has not ended; `-` without a start.
pub fn elapsed(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match start {
        Some(s) => duration(
            (end.unwrap_or_else(Utc::now) - s)
                .to_std()
                .unwrap_or_default(),
        ),
        None => "-".into(),
    }
}

/// A UTC time in the local time zone, formatted with `fmt`; `-` for none.
pub fn local_time(t: Option<DateTime<Utc>>, fmt: &str) -> String {
    t.map(|t| t.with_timezone(&Local).format(fmt).to_string())
        .unwrap_or_else(|| "-".into())
}

/// The first line of `text`, cut to at most `max` characters (with `…` when cut).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim_end();
    let more = text.lines().nth(1).is_some();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else if more {
        format!("{line} …")
    } else {
        line.to_string()
    }
}

/// How many leading characters of each of `shown` tell it apart from every id in `all`: at
/// least 8, the same for every row so the column lines up.
///
/// Dispatch ids are UUID v7, whose first 8 characters change only every 65 seconds, so a fixed
/// 8 would print the same prefix for dispatches made close together.
pub fn id_width(shown: &[Uuid], all: &[Uuid]) -> usize {
    let mut sorted: Vec<String> = all.iter().map(Uuid::to_string).collect();
    sorted.sort();
    sorted.dedup();
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let mut width = 8;
    for id in shown {
        let id = id.to_string();
        let at = sorted.partition_point(|s| *s < id);
        let before = at.checked_sub(1).map(|i| common(&sorted[i], &id));
        let after = sorted
            .get(at)
            .filter(|s| **s == id)
            .map(|_| at + 1)
            .unwrap_or(at);
        let after = sorted.get(after).map(|s| common(s, &id));
        let need = before.into_iter().chain(after).max().unwrap_or(0) + 1;
        width = width.max(need);
    }
    // Ids differ only at hex digits, so a prefix never ends on a `-`.
    width.min(36)
}

/// The first `width` characters of an id.
pub fn short_id(id: Uuid, width: usize) -> String {
    id.to_string().chars().take(width).collect()
}

/// `one` when `n` is 1, else `many`.
pub fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A JSON value as a table cell: strings without quotes (`""` when empty), `(none)` for null.
pub fn json_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(none)".into(),
        serde_json::Value::String(s) if s.is_empty() => "\"\"".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        let ms = Duration::from_millis;
        assert_eq!(duration(Duration::from_micros(171)), "171µs");
        assert_eq!(duration(Duration::from_micros(2500)), "2.5ms");
        assert_eq!(duration(ms(120)), "120ms");
        assert_eq!(duration(ms(1234)), "1.2s");
        assert_eq!(duration(ms(59_970)), "59.9s");
        assert_eq!(duration(ms(184_000)), "3m 4s");
        assert_eq!(duration(ms(7_500_000)), "2h 5m");
        assert_eq!(duration(ms(273_600_000)), "3d 4h");
    }

    #[test]
    fn first_lines_are_cut() {
        assert_eq!(first_line("short", 10), "short");
        assert_eq!(first_line("abcdefghijkl", 5), "abcd…");
        assert_eq!(first_line("one\ntwo", 10), "one …");
    }

    #[test]
    fn ids_are_as_short_as_uniqueness_allows() {
        let a: Uuid = "019aa5f3-d23d-7000-8000-000000000001".parse().unwrap();
        let b: Uuid = "019aa5f3-d23d-7000-8000-000000000002".parse().unwrap();
        let c: Uuid = "019bb000-0000-7000-8000-000000000000".parse().unwrap();
        assert_eq!(id_width(&[c], &[a, b, c]), 8);
        assert_eq!(id_width(&[a], &[a, b, c]), 36);
        let d: Uuid = "019aa5f3-d23e-7000-8000-000000000000".parse().unwrap();
        // Differs at index 12.
        assert_eq!(id_width(&[d], &[a, d]), 13);
        let e: Uuid = "019aa5f4-0000-7000-8000-000000000000".parse().unwrap();
        assert_eq!(id_width(&[e], &[a, e]), 8);
        assert_eq!(short_id(e, 8), "019aa5f4");
    }
}
