//! Air-raid alert feeds: the public sources people in Ukraine use, read for the building's own
//! community (hromada), and the rule that turns what they say into the site's shelter mode.
//! Sans-IO: answers in, a state and mode changes out; the polling is the gateway's.
//!
//! Sources (formats from their OpenAPI description and official clients):
//! - **ukrainealarm** (`api.ukrainealarm.com/api/v3`, or its keyless mirror `siren.pp.ua/api/v3`
//!   that Home Assistant's `ukraine_alarm` integration reads): `GET alerts/{regionId}` answers a
//!   list of regions, each with `activeAlerts: [{type: "AIR" | "ARTILLERY" | …}]`.
//! - **alerts.in.ua** (`api.alerts.in.ua/v1`): `GET alerts/active.json` answers
//!   `{"alerts": [{location_uid, location_type, location_oblast_uid, location_raion,
//!   alert_type: "air_raid" | …, finished_at}]}` for the whole country: an alert covers the
//!   building's hromada when it is for that hromada, its raion, or its whole oblast.
//!
//! The rule ([`AlertFeeds`]): an alert's start switches a site in normal mode to shelter; its end
//! switches back only if the feeds switched it. Losing a feed never means all clear: a feed that
//! cannot be read keeps the state it last read and raises its alarm, and the end of an alert
//! needs a feed that is read well saying so.

use serde::Deserialize;

use crate::domain::SiteMode;

/// Where an alert feed reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSource {
    UkraineAlarm,
    AlertsInUa,
}

impl AlertSource {
    /// As written in the configuration.
    pub fn parse(s: &str) -> Option<AlertSource> {
        match s {
            "ukrainealarm" => Some(AlertSource::UkraineAlarm),
            "alerts.in.ua" | "alerts-in-ua" => Some(AlertSource::AlertsInUa),
            _ => None,
        }
    }

    /// The alert types that mean "go to the shelter" unless the configuration says others.
    pub fn default_types(self) -> &'static [&'static str] {
        match self {
            AlertSource::UkraineAlarm => &["AIR"],
            AlertSource::AlertsInUa => &["air_raid"],
        }
    }
}

/// The building's place in the alert sources' map: its hromada (alerts.in.ua `location_uid`,
/// ukrainealarm `regionId`), and for alerts.in.ua its oblast's uid and its raion's name, whose
/// alerts cover it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub id: String,
    pub oblast: Option<String>,
    pub raion: Option<String>,
}

/// Whether an answer says an alert (of one of `types`) is on for `area`.
pub fn alert_in(
    source: AlertSource,
    body: &str,
    area: &Area,
    types: &[String],
) -> Result<bool, String> {
    match source {
        AlertSource::UkraineAlarm => ukrainealarm(body, area, types),
        AlertSource::AlertsInUa => alerts_in_ua(body, area, types),
    }
}

/// A string or a number in JSON, as text (ids come as both).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

impl Id {
    fn is(&self, s: &str) -> bool {
        match self {
            Id::Text(t) => t == s,
            Id::Number(n) => n.to_string() == s,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    region_id: Id,
    #[serde(default)]
    active_alerts: Option<Vec<RegionAlert>>,
}

#[derive(Debug, Deserialize)]
struct RegionAlert {
    #[serde(rename = "type")]
    kind: String,
}

fn ukrainealarm(body: &str, area: &Area, types: &[String]) -> Result<bool, String> {
    let regions: Vec<Region> = serde_json::from_str(body)
        .map_err(|e| format!("not a ukrainealarm answer (a list of regions): {e}"))?;
    if !regions.iter().any(|r| r.region_id.is(&area.id)) {
        return Err(format!(
            "the answer does not name region {} (is the region id right?)",
            area.id
        ));
    }
    // The answer for a region lists the alerts that hold there, its own and its oblast's.
    Ok(regions.iter().any(|r| {
        r.active_alerts
            .iter()
            .flatten()
            .any(|a| types.iter().any(|t| t.eq_ignore_ascii_case(&a.kind)))
    }))
}

#[derive(Debug, Deserialize)]
struct Active {
    alerts: Vec<CountryAlert>,
}

#[derive(Debug, Deserialize)]
struct CountryAlert {
    location_uid: Option<Id>,
    #[serde(default)]
    location_type: Option<String>,
    location_oblast_uid: Option<Id>,
    #[serde(default)]
    location_raion: Option<String>,
    alert_type: String,
    #[serde(default)]
    finished_at: Option<String>,
}

fn alerts_in_ua(body: &str, area: &Area, types: &[String]) -> Result<bool, String> {
    let active: Active = serde_json::from_str(body)
        .map_err(|e| format!("not an alerts.in.ua answer ({{\"alerts\": […]}}): {e}"))?;
    Ok(active.alerts.iter().any(|a| {
        let kind = types.iter().any(|t| t.eq_ignore_ascii_case(&a.alert_type));
        let ongoing = a.finished_at.is_none();
        let here = a.location_uid.as_ref().is_some_and(|u| u.is(&area.id));
        let oblast = a.location_type.as_deref() == Some("oblast")
            && area
                .oblast
                .as_deref()
                .is_some_and(|o| a.location_oblast_uid.as_ref().is_some_and(|u| u.is(o)));
        let raion = a.location_type.as_deref() == Some("raion")
            && area
                .oblast
                .as_deref()
                .is_some_and(|o| a.location_oblast_uid.as_ref().is_some_and(|u| u.is(o)))
            && area
                .raion
                .as_deref()
                .is_some_and(|r| a.location_raion.as_deref() == Some(r));
        kind && ongoing && (here || oblast || raion)
    }))
}

/// What one read of a feed came to: an alert on or off, unchanged since the last read (HTTP
/// 304), or why it could not be read.
pub type AlertRead = Result<Option<bool>, String>;

/// What the gateway is to do after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    /// Switch the site to this mode (why, in words).
    Mode(SiteMode, String),
    /// The feed cannot be read: raise its alarm.
    Failing(usize, String),
    /// It is read well again: clear its alarm.
    Recovered(usize),
    /// An alert started or ended while staff hold another mode: the mode is kept (in words).
    Kept(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FeedState {
    /// The source: the feed's id, or the node's for a dry-contact input.
    #[serde(default)]
    id: String,
    /// A node's dry-contact input (not a feed read over the internet).
    #[serde(default)]
    input: bool,
    /// What it last read well.
    alert: Option<bool>,
    failing: bool,
}

/// The alert feeds together and the shelter mode they switched. Kept over a restart whole
/// ([`AlertFeeds::state`]): what each feed last read, whether an alert is on, and whether the
/// feeds switched the mode, so a restart neither ends an alert nor starts one again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertFeeds {
    feeds: Vec<FeedState>,
    /// Whether an alert is on, by the feeds as last read (`None` before any read).
    alerting: Option<bool>,
    /// The site is in shelter mode because the feeds switched it.
    switched: bool,
}

impl AlertFeeds {
    /// The sources, each its id and whether it is a node's dry-contact input (feeds first);
    /// `switched` whether they had switched the site to shelter before a restart (kept in the
    /// store), so that the alert's end still switches it back.
    pub fn new(sources: &[(String, bool)], switched: bool) -> Self {
        AlertFeeds {
            feeds: sources
                .iter()
                .map(|(id, input)| FeedState {
                    id: id.clone(),
                    input: *input,
                    ..FeedState::default()
                })
                .collect(),
            alerting: None,
            switched,
        }
    }

    /// Taken up from [`AlertFeeds::state`] as stored before a restart, for `sources`; what the
    /// sources read, and which were failing (their alarm stands: it is cleared when one is read
    /// again, not raised twice), is kept only if they are the same sources in the same order
    /// (the configuration changed otherwise); whether they switched the mode in any case.
    pub fn restore(sources: &[(String, bool)], state: &[u8]) -> Self {
        match serde_json::from_slice::<AlertFeeds>(state) {
            Ok(a)
                if a.feeds.len() == sources.len()
                    && a.feeds
                        .iter()
                        .zip(sources)
                        .all(|(f, (id, input))| f.id == *id && f.input == *input) =>
            {
                a
            }
            // Stored before sources had ids (feeds only): taken by position, named now.
            Ok(mut a)
                if a.feeds.len() == sources.len()
                    && a.feeds.iter().all(|f| f.id.is_empty())
                    && sources.iter().all(|(_, input)| !input) =>
            {
                for (f, (id, _)) in a.feeds.iter_mut().zip(sources) {
                    f.id = id.clone();
                }
                a
            }
            Ok(a) => AlertFeeds::new(sources, a.switched),
            Err(_) => AlertFeeds::new(sources, state == b"1"),
        }
    }

    /// What to keep over a restart.
    pub fn state(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The mode a read asked for could not be set (the store failed): the next read asks again.
    pub fn mode_not_set(&mut self, asked: SiteMode) {
        self.alerting = None;
        self.switched = asked != SiteMode::Shelter;
    }

    /// Whether feed `feed` is failing (its alarm raised).
    pub fn failing(&self, feed: usize) -> bool {
        self.feeds.get(feed).is_some_and(|f| f.failing)
    }

    /// What source `feed` last read well: alert on or off (`None` before its first read).
    pub fn last_read(&self, feed: usize) -> Option<bool> {
        self.feeds.get(feed).and_then(|f| f.alert)
    }

    /// Whether the feeds switched the site to shelter (to keep over a restart).
    pub fn switched(&self) -> bool {
        self.switched
    }

    /// Someone else (staff, the API, a device) set the mode: the feeds no longer own it, and an
    /// alert's end leaves it as it is.
    pub fn mode_set_by_others(&mut self) {
        self.switched = false;
    }

    /// A read of feed `feed` while the site is in `mode`.
    pub fn read(&mut self, feed: usize, read: AlertRead, mode: SiteMode) -> Vec<AlertAction> {
        let mut out = Vec::new();
        let Some(f) = self.feeds.get_mut(feed) else {
            return out;
        };
        match read {
            Err(why) => {
                if !f.failing {
                    f.failing = true;
                    out.push(AlertAction::Failing(feed, why));
                }
            }
            Ok(read) => {
                if f.failing {
                    f.failing = false;
                    out.push(AlertAction::Recovered(feed));
                }
                if let Some(on) = read {
                    f.alert = Some(on);
                }
            }
        }
        // On while any feed last read an alert, failing or not; off only once a feed read well
        // says so and none says otherwise.
        // Clear needs every feed to have said something (a feed not read since the restart may
        // be the one that saw the alert). A node's input that has said nothing (not wired yet,
        // a node not back since a restart) does not hold the clear back: the node's own offline
        // alarm says it is gone, and an input that said "alert" last keeps the alert on.
        let on = self.feeds.iter().any(|f| f.alert == Some(true));
        let clear = !on
            && self.feeds.iter().all(|f| f.input || f.alert.is_some())
            && self
                .feeds
                .iter()
                .any(|f| !f.failing && f.alert == Some(false));
        let now = if on {
            Some(true)
        } else if clear {
            Some(false)
        } else {
            self.alerting
        };
        let before = self.alerting;
        self.alerting = now;
        match (before, now) {
            (Some(true), Some(true)) | (Some(false), Some(false)) | (_, None) => {}
            (_, Some(true)) => match mode {
                SiteMode::Normal => {
                    self.switched = true;
                    out.push(AlertAction::Mode(
                        SiteMode::Shelter,
                        "an air-raid alert for the building's community".into(),
                    ));
                }
                SiteMode::Shelter => {}
                other => out.push(AlertAction::Kept(format!(
                    "an air-raid alert started while the site is in {} mode, which staff set: it stays",
                    other.as_str()
                ))),
            },
            (_, Some(false)) => {
                if self.switched && mode == SiteMode::Shelter {
                    self.switched = false;
                    out.push(AlertAction::Mode(
                        SiteMode::Normal,
                        "the air-raid alert for the building's community is over".into(),
                    ));
                } else if mode == SiteMode::Shelter {
                    out.push(AlertAction::Kept(
                        "the air-raid alert is over; shelter mode was set by staff and stays"
                            .into(),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` feeds, named by their place.
    fn feeds(n: usize) -> Vec<(String, bool)> {
        (0..n).map(|i| (format!("feed-{i}"), false)).collect()
    }

    fn area() -> Area {
        Area {
            id: "1370".into(),
            oblast: Some("23".into()),
            raion: Some("Херсонський район".into()),
        }
    }

    fn types(s: AlertSource) -> Vec<String> {
        s.default_types().iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_ukrainealarm_answer_is_read_for_its_region_and_alert_types() {
        let s = AlertSource::UkraineAlarm;
        let air = r#"[{"regionId":"1370","regionType":"Community","regionName":"Херсонська територіальна громада","lastUpdate":"2026-12-04T08:58:05.829282Z","activeAlerts":[{"regionId":"23","regionType":"State","type":"AIR","lastUpdate":"2026-12-04T08:57:49Z"}]}]"#;
        let artillery = air.replace("\"AIR\"", "\"ARTILLERY\"");
        let clear = r#"[{"regionId":"1370","regionType":"Community","activeAlerts":[]}]"#;
        let null = r#"[{"regionId":1370,"activeAlerts":null}]"#;
        assert_eq!(alert_in(s, air, &area(), &types(s)), Ok(true));
        assert_eq!(alert_in(s, &artillery, &area(), &types(s)), Ok(false));
        assert_eq!(
            alert_in(s, &artillery, &area(), &["AIR".into(), "ARTILLERY".into()]),
            Ok(true)
        );
        assert_eq!(alert_in(s, clear, &area(), &types(s)), Ok(false));
        assert_eq!(alert_in(s, null, &area(), &types(s)), Ok(false));
        let other = r#"[{"regionId":"31","activeAlerts":[{"type":"AIR"}]}]"#;
        assert!(alert_in(s, other, &area(), &types(s))
            .unwrap_err()
            .contains("region 1370"));
        assert!(alert_in(s, "<html>rate limited</html>", &area(), &types(s)).is_err());
    }

    #[test]
    fn an_alerts_in_ua_answer_covers_the_hromada_by_its_own_raion_or_oblast_alert() {
        let s = AlertSource::AlertsInUa;
        let one = |uid: &str, kind: &str, raion: &str, alert: &str, finished: &str| {
            format!(
                r#"{{"alerts":[{{"id":1,"location_title":"x","location_type":"{kind}","started_at":"2026-12-04T08:00:00.000Z","finished_at":{finished},"updated_at":"2026-12-04T08:00:00.000Z","alert_type":"{alert}","location_uid":"{uid}","location_oblast":"Херсонська область","location_oblast_uid":23,"location_raion":"{raion}","notes":null,"calculated":false}}],"meta":{{"last_updated_at":"2026/12/04 08:00:01 +0000"}},"disclaimer":"…"}}"#
            )
        };
        let t = types(s);
        let on = |b: &str| alert_in(s, b, &area(), &t);
        assert_eq!(
            on(&one("1370", "hromada", "", "air_raid", "null")),
            Ok(true)
        );
        assert_eq!(on(&one("23", "oblast", "", "air_raid", "null")), Ok(true));
        assert_eq!(
            on(&one("57", "raion", "Херсонський район", "air_raid", "null")),
            Ok(true)
        );
        // Another raion of the oblast, another hromada, shelling only, or over: not here.
        assert_eq!(
            on(&one(
                "58",
                "raion",
                "Бериславський район",
                "air_raid",
                "null"
            )),
            Ok(false)
        );
        assert_eq!(
            on(&one("1371", "hromada", "", "air_raid", "null")),
            Ok(false)
        );
        assert_eq!(
            on(&one("1370", "hromada", "", "artillery_shelling", "null")),
            Ok(false)
        );
        assert_eq!(
            on(&one(
                "1370",
                "hromada",
                "",
                "air_raid",
                "\"2026-12-04T09:00:00.000Z\""
            )),
            Ok(false)
        );
        assert_eq!(on(r#"{"alerts":[]}"#), Ok(false));
        assert!(on(r#"{"message":"API token required"}"#).is_err());
    }

    #[test]
    fn an_alert_switches_to_shelter_its_end_back_and_a_lost_feed_never_means_all_clear() {
        let mut a = AlertFeeds::new(&feeds(1), false);
        let shelter = |x: &[AlertAction]| {
            x.iter()
                .any(|a| matches!(a, AlertAction::Mode(SiteMode::Shelter, _)))
        };
        let normal = |x: &[AlertAction]| {
            x.iter()
                .any(|a| matches!(a, AlertAction::Mode(SiteMode::Normal, _)))
        };
        assert!(a.read(0, Ok(Some(false)), SiteMode::Normal).is_empty());
        assert!(shelter(&a.read(0, Ok(Some(true)), SiteMode::Normal)));
        assert!(a.switched());
        // Read again, or unchanged (304): nothing new.
        assert!(a.read(0, Ok(Some(true)), SiteMode::Shelter).is_empty());
        assert!(a.read(0, Ok(None), SiteMode::Shelter).is_empty());
        // The feed is lost: its alarm, and the site stays in shelter however long it lasts.
        let lost = a.read(0, Err("timed out".into()), SiteMode::Shelter);
        assert_eq!(lost, vec![AlertAction::Failing(0, "timed out".into())]);
        assert!(a
            .read(0, Err("timed out".into()), SiteMode::Shelter)
            .is_empty());
        // Back, and the alert is over: the feeds switched it, so back to normal.
        let back = a.read(0, Ok(Some(false)), SiteMode::Shelter);
        assert!(
            back.contains(&AlertAction::Recovered(0)) && normal(&back),
            "{back:?}"
        );
        assert!(!a.switched());
        // A site staff put in shelter stays there when an alert ends.
        assert!(a.read(0, Ok(Some(true)), SiteMode::Shelter).is_empty());
        let end = a.read(0, Ok(Some(false)), SiteMode::Shelter);
        assert!(
            !normal(&end) && matches!(end[..], [AlertAction::Kept(_)]),
            "{end:?}"
        );
        // An alert while staff hold lockdown or an emergency: kept, and said.
        let kept = a.read(0, Ok(Some(true)), SiteMode::Emergency);
        assert!(matches!(kept[..], [AlertAction::Kept(_)]), "{kept:?}");
        // Staff take over during a switched alert: its end leaves their mode alone.
        let mut b = AlertFeeds::new(&feeds(1), false);
        b.read(0, Ok(Some(true)), SiteMode::Normal);
        b.mode_set_by_others();
        assert!(!normal(&b.read(0, Ok(Some(false)), SiteMode::Shelter)));
        // After a restart during a switched alert, its end still switches back.
        let mut c = AlertFeeds::new(&feeds(1), true);
        assert!(normal(&c.read(0, Ok(Some(false)), SiteMode::Shelter)));
        // A feed that never read well says nothing either way.
        let mut d = AlertFeeds::new(&feeds(1), true);
        let first = d.read(0, Err("refused".into()), SiteMode::Shelter);
        assert_eq!(first, vec![AlertAction::Failing(0, "refused".into())]);
    }

    #[test]
    fn a_restart_neither_ends_an_alert_nor_starts_it_again() {
        let mut a = AlertFeeds::new(&feeds(2), false);
        a.read(0, Ok(Some(false)), SiteMode::Normal);
        a.read(1, Ok(Some(true)), SiteMode::Normal);
        // Restarted: feed 0 read first says clear, feed 1 unreachable: still on.
        let mut b = AlertFeeds::restore(&feeds(2), &a.state());
        assert!(b.switched());
        assert!(b.read(0, Ok(Some(false)), SiteMode::Shelter).is_empty());
        let lost = b.read(1, Err("down".into()), SiteMode::Shelter);
        assert_eq!(lost, vec![AlertAction::Failing(1, "down".into())]);
        // Staff set normal during the alert; after a restart the same alert is no new start.
        let mut c = AlertFeeds::new(&feeds(1), false);
        c.read(0, Ok(Some(true)), SiteMode::Normal);
        c.mode_set_by_others();
        let mut d = AlertFeeds::restore(&feeds(1), &c.state());
        assert!(d.read(0, Ok(Some(true)), SiteMode::Normal).is_empty());
        // Nothing read since a restart without a stored state: no all clear either.
        let mut e = AlertFeeds::new(&feeds(2), true);
        assert!(e.read(0, Ok(Some(false)), SiteMode::Shelter).is_empty());
        // A switch the store refused is asked for again at the next read.
        let mut f = AlertFeeds::new(&feeds(1), false);
        f.read(0, Ok(Some(true)), SiteMode::Normal);
        f.mode_not_set(SiteMode::Shelter);
        let again = f.read(0, Ok(Some(true)), SiteMode::Normal);
        assert!(
            matches!(again[..], [AlertAction::Mode(SiteMode::Shelter, _)]),
            "{again:?}"
        );
        // The stored form of an older gateway ("1") is taken as switched.
        assert!(AlertFeeds::restore(&feeds(1), b"1").switched());
    }

    #[test]
    fn a_feed_failing_before_a_restart_keeps_its_alarm_and_clears_it_once_read_again() {
        let mut a = AlertFeeds::new(&feeds(1), false);
        a.read(0, Err("503".into()), SiteMode::Normal);
        let mut b = AlertFeeds::restore(&feeds(1), &a.state());
        assert!(b.failing(0));
        // Still down: no second alarm; read again: the one alarm is cleared.
        assert!(b.read(0, Err("503".into()), SiteMode::Normal).is_empty());
        assert_eq!(
            b.read(0, Ok(Some(false)), SiteMode::Normal),
            vec![AlertAction::Recovered(0)]
        );
        assert!(!b.failing(0));
    }

    #[test]
    fn with_two_feeds_one_alert_is_enough_and_a_failing_one_that_last_saw_an_alert_holds_it() {
        let mut a = AlertFeeds::new(&feeds(2), false);
        assert!(a.read(0, Ok(Some(false)), SiteMode::Normal).is_empty());
        let on = a.read(1, Ok(Some(true)), SiteMode::Normal);
        assert!(matches!(on[..], [AlertAction::Mode(SiteMode::Shelter, _)]));
        // The feed that saw the alert fails; the other says clear: not over.
        a.read(1, Err("down".into()), SiteMode::Shelter);
        let still = a.read(0, Ok(Some(false)), SiteMode::Shelter);
        assert!(still.is_empty(), "{still:?}");
        // It comes back saying clear: over.
        let over = a.read(1, Ok(Some(false)), SiteMode::Shelter);
        assert!(
            over.contains(&AlertAction::Mode(
                SiteMode::Normal,
                "the air-raid alert for the building's community is over".into()
            )),
            "{over:?}"
        );
    }

    #[test]
    fn a_source_changed_for_another_starts_afresh_and_a_silent_input_holds_no_clear_back() {
        // Two feeds before; a feed and a node's input now: the input does not inherit the
        // second feed's failing state.
        let mut a = AlertFeeds::new(&feeds(2), false);
        a.read(1, Err("down".into()), SiteMode::Normal);
        assert!(a.failing(1));
        let now = [
            ("feed-0".to_string(), false),
            ("door-main".to_string(), true),
        ];
        let b = AlertFeeds::restore(&now, &a.state());
        assert!(!b.failing(1));
        assert_eq!(b.last_read(1), None);
        // The feed says alert, then clear; the input never said anything: back to normal.
        let mut c = AlertFeeds::new(&now, false);
        assert_eq!(
            c.read(0, Ok(Some(true)), SiteMode::Normal),
            [AlertAction::Mode(
                SiteMode::Shelter,
                "an air-raid alert for the building's community".into()
            )]
        );
        assert!(matches!(
            c.read(0, Ok(Some(false)), SiteMode::Shelter).as_slice(),
            [AlertAction::Mode(SiteMode::Normal, _)]
        ));
        // An input that said "alert" keeps it on whatever the feed says.
        c.read(1, Ok(Some(true)), SiteMode::Normal);
        assert!(c.read(0, Ok(Some(false)), SiteMode::Shelter).is_empty());
        assert!(matches!(
            c.read(1, Ok(Some(false)), SiteMode::Shelter).as_slice(),
            [AlertAction::Mode(SiteMode::Normal, _)]
        ));
    }
}
