//! Members (anyone who holds a credential, staff included) and their credentials.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CertId, Credential, MemberId, OrgId, PlanId};

/// A role that grants rights by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Facility staff: every door, any hour, also in lockdown.
    Staff,
    /// Security: every door, any hour, also in lockdown.
    Security,
}

/// Whether a member's rights count at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum MemberStatus {
    /// Rights count.
    #[default]
    Active,
    /// Rights are held but do not open doors until the suspension is lifted.
    Suspended {
        /// Why, in staff's words.
        reason: String,
    },
}

/// An e-mail address, trimmed and lower-cased so that calendar attendees match members.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an e-mail address (expected name@domain)")]
pub struct EmailError(String);

impl Email {
    /// Parses an address; a `mailto:` prefix (as calendars write it) is accepted.
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let t = s.trim();
        let t = t
            .strip_prefix("mailto:")
            .or_else(|| t.strip_prefix("MAILTO:"))
            .unwrap_or(t);
        let ok = match t.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && t.len() <= 254
                    && !t.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if ok {
            Ok(Email(t.to_lowercase()))
        } else {
            Err(EmailError(s.to_string()))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// A member of the Centre: a coworker, a tenant's employee, a hostel guest, staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable identifier.
    pub id: MemberId,
    /// Name as shown to staff.
    pub name: String,
    /// For matching calendar attendees; unique among members when given.
    #[serde(default)]
    pub email: Option<Email>,
    /// Active or suspended.
    #[serde(default)]
    pub status: MemberStatus,
    /// Rights count from this instant (inclusive), if set.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// Rights stop counting at this instant (exclusive), if set.
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Roles that grant rights by themselves.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The member's plan, if any.
    #[serde(default)]
    pub plan: Option<PlanId>,
    /// The organisation the member belongs to (for leases).
    #[serde(default)]
    pub organisation: Option<OrgId>,
    /// Certifications held, such as a lab safety induction.
    #[serde(default)]
    pub certifications: Vec<CertId>,
}

impl Member {
    /// A new active member with no rights yet.
    pub fn new(id: MemberId, name: impl Into<String>) -> Self {
        Member {
            id,
            name: name.into(),
            email: None,
            status: MemberStatus::Active,
            valid_from: None,
            valid_until: None,
            roles: Vec::new(),
            plan: None,
            organisation: None,
            certifications: Vec::new(),
        }
    }

    /// Whether the member has the staff or security role.
    pub fn is_staff(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Staff | Role::Security))
    }
}

/// A credential issued to a member. Revoked credentials are kept, so that a tap with one is
/// reported as revoked rather than unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// The card or PIN.
    pub credential: Credential,
    /// Who holds it.
    pub member: MemberId,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_are_normalised_for_matching() {
        assert_eq!(
            Email::parse(" MAILTO:Olena.K@Example.UA ")
                .unwrap()
                .as_str(),
            "olena.k@example.ua"
        );
        for bad in [
            "",
            "olena",
            "@example.ua",
            "olena@",
            "olena@ua",
            "o lena@x.ua",
            "a@b@c.ua",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
