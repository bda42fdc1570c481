//! The one date-time type of every model: Facturapi sends and accepts dates in more than one
//! shape, and a model that reads only one breaks on the others.
//!
//! Read: RFC 3339 with an offset (`2024-04-08T14:22:11.000Z`, `…-06:00`), a local date-time
//! without one (`2024-04-08T08:22:11`, `2024-03-15T10:30:00.000`: a stamp date is the
//! issuer's local time; a request date without a zone is read in the organization's zone)
//! and a bare date (`2024-03-15`). Written: exactly the text it was read from, or, for a value
//! built in Rust, RFC 3339.

use std::fmt;
use std::str::FromStr;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};

/// A date-time as Facturapi writes it: with an offset, local (no zone) or a bare date. It
/// keeps the text it was read from, so a model written back says the same thing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    text: String,
    value: Moment,
}

/// What the text says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Moment {
    /// An instant: the text had an offset (`Z`, `-06:00`).
    Instant(chrono::DateTime<FixedOffset>),
    /// A wall-clock time without a zone (the issuer's or the organization's local time).
    Local(NaiveDateTime),
    /// A calendar date.
    Date(NaiveDate),
}

/// Text that is none of the shapes [`DateTime`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a date-time (RFC 3339, a local `YYYY-MM-DDTHH:MM:SS[.fff]` or `YYYY-MM-DD`): {0:?}")]
pub struct DateTimeError(String);

impl DateTime {
    /// The text as read (or as written, for a value built in Rust).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the text says.
    pub fn moment(&self) -> Moment {
        self.value
    }

    /// The instant, when the text had an offset; a local time or a date needs the zone it is
    /// in: see [`DateTime::to_utc_with`].
    pub fn to_utc(&self) -> Option<chrono::DateTime<Utc>> {
        match self.value {
            Moment::Instant(t) => Some(t.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// The instant, reading a local time or a date (at midnight) at `offset` (e.g. the
    /// organization's zone: Mexico City is `-06:00`).
    pub fn to_utc_with(&self, offset: FixedOffset) -> chrono::DateTime<Utc> {
        let local = match self.value {
            Moment::Instant(t) => return t.with_timezone(&Utc),
            Moment::Local(t) => t,
            Moment::Date(d) => d.and_time(NaiveTime::MIN),
        };
        offset
            .from_local_datetime(&local)
            .single()
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
    }

    /// The calendar date the text names (in its own zone, for an instant).
    pub fn date(&self) -> NaiveDate {
        match self.value {
            Moment::Instant(t) => t.date_naive(),
            Moment::Local(t) => t.date(),
            Moment::Date(d) => d,
        }
    }
}

impl FromStr for DateTime {
    type Err = DateTimeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            Moment::Instant(t)
        } else if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            Moment::Local(t)
        } else if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Moment::Date(d)
        } else {
            return Err(DateTimeError(text.chars().take(64).collect()));
        };
        Ok(Self {
            text: text.to_owned(),
            value,
        })
    }
}

impl<Tz: chrono::TimeZone> From<chrono::DateTime<Tz>> for DateTime
where
    Tz::Offset: fmt::Display,
{
    fn from(t: chrono::DateTime<Tz>) -> Self {
        let t = t.fixed_offset();
        Self {
            text: t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            value: Moment::Instant(t),
        }
    }
}

impl From<NaiveDate> for DateTime {
    fn from(d: NaiveDate) -> Self {
        Self {
            text: d.format("%Y-%m-%d").to_string(),
            value: Moment::Date(d),
        }
    }
}

impl From<NaiveDateTime> for DateTime {
    fn from(t: NaiveDateTime) -> Self {
        Self {
            text: t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            value: Moment::Local(t),
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateTime({:?})", self.text)
    }
}

impl serde::Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for DateTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_reads_and_writes_back_as_it_came() {
        for text in [
            "2024-04-08T14:22:11.000Z",
            "2024-04-08T08:22:11-06:00",
            "2024-04-08T08:22:11",
            "2024-03-15T10:30:00.000",
            "2024-03-15",
        ] {
            let t: DateTime = text.parse().unwrap();
            assert_eq!(t.as_str(), text);
            assert_eq!(serde_json::to_value(&t).unwrap(), text);
            let back: DateTime = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(back, t);
        }
        for junk in [
            "",
            "yesterday",
            "2024-13-01",
            "08:22:11",
            "2024-04-08 08:22",
        ] {
            assert!(junk.parse::<DateTime>().is_err(), "{junk:?}");
        }
    }

    #[test]
    fn instants_and_local_times() {
        let stamped: DateTime = "2024-04-08T08:22:11".parse().unwrap();
        assert_eq!(stamped.to_utc(), None, "a local time is not an instant");
        let mexico = FixedOffset::west_opt(6 * 3600).unwrap();
        assert_eq!(
            stamped.to_utc_with(mexico).to_rfc3339(),
            "2024-04-08T14:22:11+00:00"
        );
        let z: DateTime = "2024-04-08T14:22:11Z".parse().unwrap();
        assert_eq!(z.to_utc(), Some(stamped.to_utc_with(mexico)));
        assert_eq!(z.date(), NaiveDate::from_ymd_opt(2024, 4, 8).unwrap());
        let built = DateTime::from(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap());
        assert_eq!(built.as_str(), "2024-01-02T03:04:05Z");
    }
}
