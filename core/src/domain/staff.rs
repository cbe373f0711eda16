//! Staff accounts on the dashboard: their names, roles and stored password hashes. Hashing,
//! sessions and the sign-in limits are the gateway's (`kombinat::staff`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A staff account's name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StaffName(String);

impl StaffName {
    /// Checks a name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(StaffName(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a staff name: 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StaffName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        StaffName::parse(&s)
    }
}

impl From<StaffName> for String {
    fn from(n: StaffName) -> String {
        n.0
    }
}

impl fmt::Display for StaffName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a staff member may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Watches: the floor plan, rooms, doors, the log, utilisation, devices.
    Viewer,
    /// Also unlocks doors and switches the site mode.
    Operator,
    /// Also manages staff accounts, members and cards.
    Admin,
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StaffRole::Viewer => "viewer",
            StaffRole::Operator => "operator",
            StaffRole::Admin => "admin",
        })
    }
}

/// A stored staff account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAccount {
    /// The login name.
    pub name: StaffName,
    /// What the account may do.
    pub role: StaffRole,
    /// The argon2id hash of the password, as a PHC string.
    pub password: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}
