//! Calendar days as typed in a date field (`<input type="date">` sends `YYYY-MM-DD`): a
//! UTC day, read by `humantime`'s RFC 3339 parser rather than by hand, so `2026-02-30`
//! or `2026-1-5` are refused, not guessed at. Used by the console's Security events
//! filter.

use std::time::{Duration, UNIX_EPOCH};

use crate::store::Millis;

const DAY_MS: Millis = 86_400_000;

/// One UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    /// Its first instant.
    start: Millis,
}

impl Day {
    pub fn parse(input: &str) -> Option<Day> {
        let b = input.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return None;
        }
        let at = humantime::parse_rfc3339(&format!("{input}T00:00:00Z")).ok()?;
        let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
        Some(Day {
            start: Millis::try_from(ms).ok()?,
        })
    }

    /// The day holding `at`.
    pub fn of(at: Millis) -> Day {
        Day {
            start: at - at.rem_euclid(DAY_MS),
        }
    }

    pub fn start(self) -> Millis {
        self.start
    }

    /// The first instant of the next day.
    pub fn end(self) -> Millis {
        self.start.saturating_add(DAY_MS)
    }

    /// `YYYY-MM-DD`, as a date field shows it.
    pub fn as_string(self) -> String {
        let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(self.start).unwrap_or(0));
        let mut s = humantime::format_rfc3339_seconds(t).to_string();
        s.truncate(10);
        s
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_date_field_reads_as_its_utc_day() {
        let day = Day::parse("2026-12-03").unwrap();
        assert_eq!(day.start(), 1_796_256_000_000);
        assert_eq!(day.end() - day.start(), DAY_MS);
        assert_eq!(day.as_string(), "2026-12-03");
        assert_eq!(Day::of(day.start() + 5), day);
        assert_eq!(Day::parse("2024-02-29").unwrap().as_string(), "2024-02-29");
        for bad in [
            "",
            "2026-02-30",
            "2025-02-29",
            "2026-1-05",
            "2026-13-01",
            "2026-12-03T00:00:00Z",
            " 2026-12-03",
            "２０２６-12-03",
            "2026/12/03",
            "-002-12-03",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_day_reads_back_as_itself(n in 0i64..200_000) {
            let day = Day::of(n * DAY_MS + 1);
            prop_assert_eq!(Day::parse(&day.as_string()), Some(day));
        }

        #[test]
        fn anything_parsed_is_a_day_that_prints_as_typed(s in "\\PC{0,12}") {
            if let Some(day) = Day::parse(&s) {
                prop_assert_eq!(day.as_string(), s);
            }
        }
    }
}
