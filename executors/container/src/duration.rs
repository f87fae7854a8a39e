//! Durations in executor options: written as `"250ms"`, `"30s"`, `"1m 30s"` (humantime) or a
//! number of seconds, read back the same way.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Secs(f64),
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Secs(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        Raw::Secs(s) => Err(serde::de::Error::custom(format!(
            "a duration must be a positive number of seconds, found {s}"
        ))),
        Raw::Text(t) => humantime::parse_duration(&t).map_err(|e| {
            serde::de::Error::custom(format!(
                "malformed duration \"{t}\": {e}; expected e.g. \"250ms\", \"30s\" or a number of seconds"
            ))
        }),
    }
}
