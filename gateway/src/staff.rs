//! Staff accounts on the dashboard: names, roles, argon2id password hashes, sessions that
//! survive a restart, and the login rate limit.
//!
//! - [`StaffAccount`] is stored with the other records ([`crate::store::Change::Staff`]); only
//!   the PHC string of an argon2id hash (19 MiB, two passes) is kept. Hashing and checking take
//!   tens of milliseconds and block, so the HTTP side runs them on the blocking pool.
//! - [`Staff`] is what the HTTP API holds: the accounts (cached; every change goes through the
//!   store first), the sessions (a random 256-bit id in the cookie, only its SHA-256 kept, each
//!   with its own CSRF token; stored as one small record and written on login and logout, so a
//!   restart signs nobody out) and the [`LoginLimiter`].
//! - Roles are ordered: an operator can do what a viewer can, an admin what an operator can.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Actor, AuditEntry, Change, Store, StoreError};

pub use kombinat_core::domain::{StaffAccount, StaffName, StaffRole};

/// A password to print once: 20 letters and digits (about 119 bits), without the ones that
/// look alike (l, o, I, O, 0, 1).
pub fn generate_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
    Ok(raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Why a staff change or login did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The name is taken.
    #[error("there is already a staff account {0}")]
    Exists(StaffName),
    /// No such account.
    #[error("there is no staff account {0}")]
    Unknown(StaffName),
    /// The password is too short or too long.
    #[error("a password needs 10 to 256 characters")]
    WeakPassword,
    /// The last admin cannot be removed or demoted.
    #[error("{0} is the last admin: make another admin first")]
    LastAdmin(StaffName),
    /// The hash could not be made (a bug, reported rather than hidden).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hashes a password with argon2id (19 MiB, two passes, one lane: the OWASP minimum, about
/// 50 ms on a Raspberry Pi 4). Blocks: call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, StaffError> {
    if !(10..=256).contains(&password.chars().count()) {
        return Err(StaffError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StaffError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StaffError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StaffError::Hash(e.to_string()))
}

/// Whether `password` matches a stored PHC hash. Blocks like [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash that matches no password, checked when the name is unknown so that a login for an
/// unknown name takes as long as one for a known name.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// Adds an account to a store (the command line, the demo, the API).
pub fn add_account(
    store: &dyn Store,
    name: StaffName,
    role: StaffRole,
    password: &str,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<StaffAccount, StaffError> {
    if store.staff()?.iter().any(|a| a.name == name) {
        return Err(StaffError::Exists(name));
    }
    let account = StaffAccount {
        name: name.clone(),
        role,
        password: hash_password(password)?,
        created_at: now,
    };
    store.commit(
        &[Change::Staff(account.clone())],
        &AuditEntry::change(now, actor, format!("staff {name} added as {role}")),
    )?;
    Ok(account)
}

/// How long a session lasts from login.
pub const SESSION_HOURS: i64 = 12;

/// The state key the sessions are stored under.
const SESSIONS_KEY: &str = "staff/sessions";

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whose.
    pub staff: StaffName,
    /// The token the page sends back in `X-CSRF-Token` on every change.
    pub csrf: String,
    /// When it ends.
    pub expires: DateTime<Utc>,
}

/// Who is asking, once the session is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The account.
    pub name: StaffName,
    /// Its role now (a change of role applies at once).
    pub role: StaffRole,
    /// The session's CSRF token.
    pub csrf: String,
}

fn random_token() -> Result<String, StaffError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| StaffError::Hash(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Staff accounts, sessions and the login limit, shared by the HTTP handlers.
pub struct Staff {
    store: Arc<dyn Store>,
    accounts: RwLock<BTreeMap<StaffName, StaffAccount>>,
    /// Sessions by the SHA-256 of their id.
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed logins.
    pub limiter: Mutex<LoginLimiter>,
    /// Password checks running at once, at most two: each holds 19 MiB.
    pub hashing: tokio::sync::Semaphore,
    /// Account changes one at a time (so the last admin cannot be removed twice over).
    changes: Mutex<()>,
}

impl Staff {
    /// Loads accounts and live sessions from the store.
    pub fn load(store: Arc<dyn Store>, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let accounts = store
            .staff()?
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        let sessions: HashMap<String, Session> = match store.state(SESSIONS_KEY)? {
            Some(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                // Signing everyone out is the safe way out of a record that does not decode.
                tracing::warn!(error = %e, "the stored sessions do not decode; everyone signs in again");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        let sessions = sessions
            .into_iter()
            .filter(|(_, s)| s.expires > now)
            .collect();
        Ok(Staff {
            store,
            accounts: RwLock::new(accounts),
            sessions: Mutex::new(sessions),
            limiter: Mutex::new(LoginLimiter::default()),
            hashing: tokio::sync::Semaphore::new(2),
            changes: Mutex::new(()),
        })
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Vec<StaffAccount> {
        self.accounts
            .read()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }

    fn account(&self, name: &StaffName) -> Option<StaffAccount> {
        self.accounts.read().ok()?.get(name).cloned()
    }

    /// Checks a name and password (blocks: argon2). The account when they match.
    pub fn check_password(&self, name: &str, password: &str) -> Option<StaffAccount> {
        let account = StaffName::parse(name).ok().and_then(|n| self.account(&n));
        match account {
            Some(a) if verify_password(password, &a.password) => Some(a),
            Some(_) => None,
            None => {
                let _ = verify_password(password, decoy_hash());
                None
            }
        }
    }

    /// Opens a session; returns its id (for the cookie) and the session.
    pub fn open_session(
        &self,
        name: &StaffName,
        now: DateTime<Utc>,
    ) -> Result<(String, Session), StaffError> {
        let id = random_token()?;
        let session = Session {
            staff: name.clone(),
            csrf: random_token()?,
            expires: now + chrono::Duration::hours(SESSION_HOURS),
        };
        self.change_sessions(|m| {
            m.retain(|_, s| s.expires > now);
            m.insert(crate::domain::token_hash(&id), session.clone());
        })?;
        Ok((id, session))
    }

    /// Ends a session.
    pub fn close_session(&self, id: &str) -> Result<(), StaffError> {
        let hash = crate::domain::token_hash(id);
        self.change_sessions(|m| {
            m.remove(&hash);
        })
    }

    fn change_sessions(
        &self,
        f: impl FnOnce(&mut HashMap<String, Session>),
    ) -> Result<(), StaffError> {
        // Held across the write: two changes at once cannot be stored in the wrong order
        // (and a closed session come back after a restart).
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m);
        let bytes = serde_json::to_vec(&*m).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.store.put_state(SESSIONS_KEY, &bytes)?;
        self.store.flush()?;
        Ok(())
    }

    /// The staff member behind a session id, if the session is live and the account exists.
    pub fn session(&self, id: &str, now: DateTime<Utc>) -> Option<Signed> {
        let hash = crate::domain::token_hash(id);
        let s = self
            .sessions
            .lock()
            .ok()?
            .get(&hash)
            .filter(|s| s.expires > now)
            .cloned()?;
        let a = self.account(&s.staff)?;
        Some(Signed {
            name: a.name,
            role: a.role,
            csrf: s.csrf,
        })
    }

    /// Adds an account (blocks: argon2), audited as `by`.
    pub fn add(
        &self,
        name: StaffName,
        role: StaffRole,
        password: &str,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffAccount, StaffError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let a = add_account(self.store.as_ref(), name, role, password, by, now)?;
        if let Ok(mut m) = self.accounts.write() {
            m.insert(a.name.clone(), a.clone());
        }
        Ok(a)
    }

    /// Changes an account's role and, if given, its password (blocks: argon2).
    pub fn update(
        &self,
        name: &StaffName,
        role: Option<StaffRole>,
        password: Option<&str>,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffAccount, StaffError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut a = self
            .account(name)
            .ok_or_else(|| StaffError::Unknown(name.clone()))?;
        let mut said = Vec::new();
        if let Some(role) = role {
            if a.role == StaffRole::Admin && role != StaffRole::Admin && self.admins() <= 1 {
                return Err(StaffError::LastAdmin(name.clone()));
            }
            if role != a.role {
                said.push(format!("role {} → {role}", a.role));
            }
            a.role = role;
        }
        if let Some(p) = password {
            a.password = hash_password(p)?;
            said.push("password changed".into());
        }
        let summary = format!("staff {name}: {}", said.join(", "));
        self.store.commit(
            &[Change::Staff(a.clone())],
            &AuditEntry::change(now, by, summary),
        )?;
        if let Ok(mut m) = self.accounts.write() {
            m.insert(a.name.clone(), a.clone());
        }
        if password.is_some() {
            // A new password signs out every browser of the old one.
            self.change_sessions(|m| m.retain(|_, s| s.staff != *name))?;
        }
        Ok(a)
    }

    /// Removes an account and its sessions.
    pub fn remove(
        &self,
        name: &StaffName,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), StaffError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let a = self
            .account(name)
            .ok_or_else(|| StaffError::Unknown(name.clone()))?;
        if a.role == StaffRole::Admin && self.admins() <= 1 {
            return Err(StaffError::LastAdmin(name.clone()));
        }
        self.store.commit(
            &[Change::RemoveStaff(name.clone())],
            &AuditEntry::change(now, by, format!("staff {name} removed")),
        )?;
        if let Ok(mut m) = self.accounts.write() {
            m.remove(name);
        }
        self.change_sessions(|m| m.retain(|_, s| s.staff != *name))
    }

    fn admins(&self) -> usize {
        self.accounts
            .read()
            .map(|m| m.values().filter(|a| a.role == StaffRole::Admin).count())
            .unwrap_or(0)
    }
}

/// Failed logins allowed per address and per name within [`LoginLimiter::WINDOW`].
pub const LOGIN_FAILURES: usize = 5;

/// Counts failed logins per client address and per name. After [`LOGIN_FAILURES`] in the
/// window from one address, its further attempts are refused without checking the password
/// until the oldest failure ages out. A name's failures never lock its owner out (anyone could
/// do that to the admin, in an emergency too): past the limit, attempts on the name are still
/// checked, but a wrong password then costs [`NAME_LIMITED_DELAY`] and is answered as limited.
/// An attempt counts as failed from the moment it is let through (so attempts sent in parallel
/// cannot outrun the count while their passwords are checked); [`LoginLimiter::succeeded`]
/// takes it back. Only well-formed names are counted by name; the tables are bounded, and when
/// the address table is full attempts are refused rather than not counted.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    by_addr: HashMap<IpAddr, VecDeque<Instant>>,
    by_name: HashMap<StaffName, VecDeque<Instant>>,
    /// Attempts refused by the limit so far.
    pub refused: u64,
}

/// What a wrong password costs on a name past its limit: guessing one name from many
/// addresses goes no faster than this.
pub const NAME_LIMITED_DELAY: Duration = Duration::from_secs(2);

/// The address a sign-in is counted against: an IPv6 client's /64 (one host is given a whole
/// /64 and can pick any address in it), an IPv4 client's own address.
fn counted_as(a: IpAddr) -> IpAddr {
    match a.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Entries each table of the [`LoginLimiter`] holds at most.
const LIMITER_ENTRIES: usize = 10_000;

impl LoginLimiter {
    /// The window failures are counted over.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);

    fn prune(q: &mut VecDeque<Instant>, now: Instant) {
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Self::WINDOW)
        {
            q.pop_front();
        }
    }

    fn wait(q: Option<&mut VecDeque<Instant>>, now: Instant) -> Option<Duration> {
        let q = q?;
        Self::prune(q, now);
        if q.len() >= LOGIN_FAILURES {
            q.front().map(|t| Self::WINDOW - now.duration_since(*t))
        } else {
            None
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.by_addr.retain(|_, q| {
            Self::prune(q, now);
            !q.is_empty()
        });
        self.by_name.retain(|_, q| {
            Self::prune(q, now);
            !q.is_empty()
        });
    }

    /// Lets an attempt go ahead (counting it as failed until [`LoginLimiter::succeeded`]), or
    /// says how long until the address may try again. `Ok(Some(wait))` lets it go ahead on a
    /// name past its limit: a wrong password is then answered as limited, after
    /// [`NAME_LIMITED_DELAY`].
    pub fn begin(
        &mut self,
        addr: Option<IpAddr>,
        name: &str,
        now: Instant,
    ) -> Result<Option<Duration>, Duration> {
        let addr = addr.map(counted_as);
        let name = StaffName::parse(name).ok();
        if let Some(w) = Self::wait(addr.and_then(|a| self.by_addr.get_mut(&a)), now) {
            self.refused += 1;
            return Err(w);
        }
        let name_wait = Self::wait(name.as_ref().and_then(|n| self.by_name.get_mut(n)), now);
        if self.by_addr.len() >= LIMITER_ENTRIES || self.by_name.len() >= LIMITER_ENTRIES {
            self.sweep(now);
        }
        let new_addr = addr.is_some_and(|a| !self.by_addr.contains_key(&a));
        let new_name = name.as_ref().is_some_and(|n| !self.by_name.contains_key(n));
        if new_addr && self.by_addr.len() >= LIMITER_ENTRIES {
            // A flood of addresses: no new address signs in until it ages out.
            self.refused += 1;
            return Err(Self::WINDOW);
        }
        if let Some(a) = addr {
            self.by_addr.entry(a).or_default().push_back(now);
        }
        if new_name && self.by_name.len() >= LIMITER_ENTRIES {
            // A flood of names: a new one is treated as past its limit (checked, slowed).
            return Ok(Some(Self::WINDOW));
        }
        if let Some(n) = name {
            self.by_name.entry(n).or_default().push_back(now);
        }
        Ok(name_wait)
    }

    /// The attempt let through at `at` succeeded: it is taken back from the address, and the
    /// name's failures are forgotten.
    pub fn succeeded(&mut self, addr: Option<IpAddr>, name: &str, at: Instant) {
        let addr = addr.map(counted_as);
        if let Some(q) = addr.and_then(|a| self.by_addr.get_mut(&a)) {
            if let Some(i) = q.iter().rposition(|t| *t == at) {
                q.remove(i);
            }
        }
        if let Ok(n) = StaffName::parse(name) {
            self.by_name.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn now() -> DateTime<Utc> {
        "2026-11-26T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn names_are_checked() {
        assert!(StaffName::parse("olena.k").is_ok());
        assert!(StaffName::parse("").is_err());
        assert!(StaffName::parse("Olena").is_err());
        assert!(StaffName::parse(".x").is_err());
        assert!(StaffName::parse("a b").is_err());
        assert!(StaffName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_password_is_stored_only_as_an_argon2id_hash_and_checks() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let staff = Staff::load(store.clone(), now()).unwrap();
        let name = StaffName::parse("olena").unwrap();
        staff
            .add(
                name.clone(),
                StaffRole::Operator,
                "correct horse battery",
                Actor::System,
                now(),
            )
            .unwrap();
        let stored = &store.staff().unwrap()[0];
        assert!(stored.password.starts_with("$argon2id$"));
        assert!(!stored.password.contains("correct horse"));
        assert!(staff
            .check_password("olena", "correct horse battery")
            .is_some());
        assert!(staff
            .check_password("olena", "wrong horse battery")
            .is_none());
        assert!(staff
            .check_password("nobody", "correct horse battery")
            .is_none());
        assert!(matches!(
            staff.add(
                name,
                StaffRole::Viewer,
                "another password",
                Actor::System,
                now()
            ),
            Err(StaffError::Exists(_))
        ));
        assert!(matches!(
            staff.add(
                StaffName::parse("x").unwrap(),
                StaffRole::Viewer,
                "short",
                Actor::System,
                now()
            ),
            Err(StaffError::WeakPassword)
        ));
    }

    #[test]
    fn sessions_survive_a_reload_and_end() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let staff = Staff::load(store.clone(), now()).unwrap();
        let name = StaffName::parse("olena").unwrap();
        staff
            .add(
                name.clone(),
                StaffRole::Admin,
                "correct horse battery",
                Actor::System,
                now(),
            )
            .unwrap();
        let (id, s) = staff.open_session(&name, now()).unwrap();
        let again = Staff::load(store.clone(), now()).unwrap();
        let signed = again.session(&id, now()).unwrap();
        assert_eq!((signed.role, signed.csrf), (StaffRole::Admin, s.csrf));
        assert!(again.session("not-a-session", now()).is_none());
        let later = now() + chrono::Duration::hours(SESSION_HOURS);
        assert!(again.session(&id, later).is_none(), "expired");
        again.close_session(&id).unwrap();
        assert!(Staff::load(store, now())
            .unwrap()
            .session(&id, now())
            .is_none());
    }

    #[test]
    fn the_last_admin_stays() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let staff = Staff::load(store, now()).unwrap();
        let name = StaffName::parse("admin").unwrap();
        staff
            .add(
                name.clone(),
                StaffRole::Admin,
                "correct horse battery",
                Actor::System,
                now(),
            )
            .unwrap();
        assert!(matches!(
            staff.remove(&name, Actor::System, now()),
            Err(StaffError::LastAdmin(_))
        ));
        assert!(matches!(
            staff.update(&name, Some(StaffRole::Viewer), None, Actor::System, now()),
            Err(StaffError::LastAdmin(_))
        ));
    }

    #[test]
    fn logins_are_limited_per_address_and_per_name() {
        let mut l = LoginLimiter::default();
        let t = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        // Attempts in flight count before their passwords are checked.
        for _ in 0..LOGIN_FAILURES {
            assert!(l.begin(Some(a), "olena", t).is_ok());
        }
        assert!(
            l.begin(Some(a), "petro", t).is_err(),
            "the address is limited"
        );
        // From another address the name is checked still, flagged as past its limit.
        assert!(matches!(l.begin(Some(b), "olena", t), Ok(Some(_))));
        assert_eq!(l.begin(Some(b), "petro", t), Ok(None));
        l.succeeded(Some(b), "petro", t);
        l.succeeded(Some(b), "olena", t);
        assert_eq!(
            l.begin(Some(b), "olena", t),
            Ok(None),
            "a right password clears the name"
        );
        let later = t + LoginLimiter::WINDOW;
        assert!(l.begin(Some(a), "olena", later).is_ok(), "failures age out");
        assert_eq!(l.refused, 1);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_itself() {
        let mut l = LoginLimiter::default();
        let t = Instant::now();
        for i in 0..LOGIN_FAILURES {
            let a: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert!(l.begin(Some(a), "olena", t).is_ok());
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(
            l.begin(Some(same_64), "petro", t).is_err(),
            "one /64, one client"
        );
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.begin(Some(other_64), "petro", t).is_ok());
        assert_eq!(
            counted_as("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_success_takes_its_attempt_back() {
        let mut l = LoginLimiter::default();
        let t = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for i in 0..(LOGIN_FAILURES as u64 * 3) {
            let at = t + Duration::from_millis(i);
            assert!(l.begin(Some(a), "olena", at).is_ok());
            l.succeeded(Some(a), "olena", at);
        }
    }

    #[test]
    fn a_flood_of_names_is_refused_not_forgotten() {
        let mut l = LoginLimiter::default();
        let t = Instant::now();
        for i in 0..LIMITER_ENTRIES {
            let addr = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            assert!(l.begin(Some(addr), &format!("n{i}"), t).is_ok());
        }
        assert!(
            matches!(l.begin(None, "someone-new", t), Ok(Some(_))),
            "a new name past a full table is slowed, not forgotten"
        );
        // Names that are not staff names are not kept by name.
        assert_eq!(l.begin(None, &"X".repeat(1000), t), Ok(None));
        let addr = IpAddr::from([11, 0, 0, 1]);
        let mut full = LoginLimiter::default();
        for i in 0..LIMITER_ENTRIES {
            let a = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            assert!(full.begin(Some(a), "x", t).is_ok());
        }
        assert!(
            full.begin(Some(addr), "x", t).is_err(),
            "a flood of addresses"
        );
    }
}
