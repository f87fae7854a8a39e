//! Time helpers every layer uses: serde for `Duration` options written as `"30s"` or a number
//! of seconds, and the microsecond timestamps the store keeps. Owns nothing else.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 before it).
pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Serde for `Duration` options written as `"250ms"`, `"30s"`, `"1m 30s"` or a number of
/// seconds (`#[serde(with = "covalent::executor::serde_duration")]`), for executor plugins.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes `"1m 30s"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::duration_opt::serialize(&Some(*d), s)
    }

    /// Reads a humantime string or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::duration_opt::deserialize(d)?
            .ok_or_else(|| serde::de::Error::custom("a duration is required here"))
    }
}

/// Serde for `Option<Duration>` written as `"30s"` / `"1m 30s"` or a number of seconds
/// (`#[serde(with = "covalent::executor::serde_duration_opt")]`).
pub mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `"1m 30s"` or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(f64),
    }

    /// Reads a humantime string, a number of seconds, or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Secs(s)) if s >= 0.0 && s.is_finite() => Ok(Some(Duration::from_secs_f64(s))),
            Some(Raw::Secs(s)) => Err(serde::de::Error::custom(format!(
                "a time limit must be a positive number of seconds, found {s}"
            ))),
            Some(Raw::Text(t)) => humantime::parse_duration(&t).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "malformed duration \"{t}\": {e}; expected e.g. \"30s\", \"1m 30s\" or a number of seconds"
                ))
            }),
        }
    }
}
