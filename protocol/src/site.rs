//! The site family: the site mode (published retained by the gateway, changed by signed
//! requests from an alert feed or staff tools) and the kinds of booking events.

use core::fmt;
use core::str::FromStr;

use crate::auth::{signed, Mac};
use crate::DeviceId;

/// How the site as a whole behaves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SiteMode {
    /// Every rule as written.
    #[default]
    Normal,
    /// Only staff and security pass.
    Lockdown,
    /// Fire alarm: egress doors are released (the hard-wired release stays the primary means).
    Emergency,
    /// Air-raid alert: the doors on the way to the shelter open for everyone; other rules hold.
    Shelter,
}

impl SiteMode {
    /// The mode's name on the wire and in commands.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteMode::Normal => "normal",
            SiteMode::Lockdown => "lockdown",
            SiteMode::Emergency => "emergency",
            SiteMode::Shelter => "shelter",
        }
    }
}

impl fmt::Display for SiteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a site mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownMode;

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the site mode is one of normal, lockdown, emergency, shelter")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownMode {}

impl FromStr for SiteMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "normal" => SiteMode::Normal,
            "lockdown" => SiteMode::Lockdown,
            "emergency" => SiteMode::Emergency,
            "shelter" => SiteMode::Shelter,
            _ => return Err(UnknownMode),
        })
    }
}

/// A signed request to change the site mode, on `site/mode/set`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSet {
    /// Protocol version.
    pub v: u8,
    /// The sender (an alert feed or a staff tool registered as a device).
    pub device: DeviceId,
    /// The sender's counter.
    pub counter: u64,
    /// The mode wanted.
    pub mode: SiteMode,
    /// HMAC over the fields above.
    pub mac: Mac,
}

signed!(ModeSet, "mode-set", |s, m| {
    m.num(u64::from(s.v));
    m.show(s.device);
    m.num(s.counter);
    m.text(s.mode.as_str());
});

/// The site mode as the gateway publishes it (retained) on `site/mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeState {
    /// Protocol version.
    pub v: u8,
    /// The mode in force; door nodes follow it (released doors, lockdown).
    pub mode: SiteMode,
    /// Since when (Unix seconds).
    pub since: u64,
}

/// Kinds of booking events the gateway publishes on `booking/<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingEventKind {
    /// Nobody came to a booked room.
    NoShow,
}

impl BookingEventKind {
    /// The topic leaf.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingEventKind::NoShow => "no-show",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "no-show" => Some(BookingEventKind::NoShow),
            _ => None,
        }
    }
}
