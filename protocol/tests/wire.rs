//! The worked examples of protocol/README.md, checked: the JSON parses, and the MACs given there
//! are what the documented key produces.

use kombinat_protocol::auth::{DeviceKey, ReplayGuard, Signed};
use kombinat_protocol::door::{Decision, Tap};
use kombinat_protocol::Reason;

const README: &str = include_str!("../README.md");
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The first JSON line after a line containing `marker`.
fn example(marker: &str) -> &'static str {
    let mut lines = README.lines().skip_while(|l| !l.contains(marker));
    lines.next();
    lines
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no example after {marker}"))
}

#[test]
fn the_readme_tap_and_decision_verify_under_the_documented_key() {
    let key = DeviceKey::parse_hex(KEY).unwrap();
    let tap: Tap = serde_json::from_str(example("<!-- example: tap -->")).unwrap();
    assert!(
        tap.verify(&key),
        "tap MAC should be {}",
        tap.compute_mac(&key)
    );
    let d: Decision = serde_json::from_str(example("<!-- example: decision -->")).unwrap();
    assert!(
        d.verify(&key),
        "decision MAC should be {}",
        d.compute_mac(&key)
    );
    assert_eq!((d.tap, d.reason), (tap.counter, Reason::Staff));
    let mut other = d.clone();
    other.allow = false;
    assert!(!other.verify(&key), "any changed field breaks the MAC");
    assert!(!d.verify(&DeviceKey::from_bytes([7; 32])));
    let mut guard = ReplayGuard::after(tap.counter - 1);
    assert!(guard.accept(tap.counter).is_ok());
    assert!(guard.accept(tap.counter).is_err());
}

#[test]
fn the_readme_mac_input_is_the_canonical_text() {
    // HMAC-SHA256 over exactly the documented text, computed independently of `Signed`.
    use hmac::{Hmac, Mac};
    let key = DeviceKey::parse_hex(KEY).unwrap();
    let text = README
        .lines()
        .skip_while(|l| !l.contains("<!-- example: mac input -->"))
        .nth(1)
        .unwrap()
        .trim()
        .trim_matches('`');
    assert!(text.starts_with("kombinat/1|tap|"), "{text}");
    let tap: Tap = serde_json::from_str(example("<!-- example: tap -->")).unwrap();
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
    m.update(text.as_bytes());
    let mac: [u8; 32] = m.finalize().into_bytes().into();
    assert_eq!(mac, tap.compute_mac(&key).0, "{text}");
}

#[test]
fn the_readme_broker_password_is_derived_from_the_key_as_it_says() {
    let key = DeviceKey::parse_hex(KEY).unwrap();
    let documented = README
        .lines()
        .skip_while(|l| !l.contains("<!-- example: broker password -->"))
        .nth(1)
        .unwrap()
        .trim()
        .trim_matches('`');
    assert_eq!(kombinat_protocol::auth::broker_password(&key), documented);
}

#[test]
fn the_readme_no_show_parses() {
    let n: kombinat_protocol::booking::NoShow =
        serde_json::from_str(example("<!-- example: no-show -->")).unwrap();
    assert_eq!((n.v, n.room.as_str()), (1, "meeting-1"));
    assert_eq!(n.judged_at - n.start, 600);
}

#[test]
#[ignore = "prints the README's examples; run with --ignored when the protocol changes"]
fn print_examples() {
    use kombinat_protocol::{CardId, Credential, DeviceId, DoorId};
    let key = DeviceKey::parse_hex(KEY).unwrap();
    let mut t = Tap {
        v: 1,
        door: DoorId::parse("d-cowork-in").unwrap(),
        device: DeviceId::parse("door-cowork").unwrap(),
        counter: 42,
        credential: Credential::Card(CardId::parse("04A1B2C3").unwrap()),
        mac: Default::default(),
    };
    t.sign(&key);
    println!("{}", serde_json::to_string(&t).unwrap());
    let mut d = Decision {
        v: 1,
        door: t.door,
        device: t.device,
        counter: 7,
        tap: 42,
        allow: true,
        reason: Reason::Staff,
        unlock_ms: 3000,
        mac: Default::default(),
    };
    d.sign(&key);
    println!("{}", serde_json::to_string(&d).unwrap());
}
