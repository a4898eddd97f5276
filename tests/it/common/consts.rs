//! Values several test files share, so a test reads the same account or duration as its
//! neighbours and a change of policy (password rules, say) is made once.

use vigile::store::Millis;

/// A password the default policy accepts.
pub const PW: &str = "Sufficient-1 pass";
/// A password that is never anyone's.
pub const WRONG: &str = "Wrong-password-1";

/// A member.
pub const ANN: &str = "ann@example.com";
/// An admin (made one by the test).
pub const BOSS: &str = "boss@example.com";

pub const MINUTE: Millis = 60_000;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;
