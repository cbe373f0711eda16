//! The JSON bodies the HTTP API reads: sign-in, staff accounts, and the members and bookings
//! bodies turned into fields and checked as the handlers do. Nothing may panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use kombinat::access::Snapshot;
use kombinat::domain::SourceId;
use kombinat::http::auth::{Login, NewStaff, StaffChange};
use libfuzzer_sys::fuzz_target;

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let site = kombinat::site_file::parse(include_str!("../../deploy/site.example.toml"))
            .expect("the example site reads");
        Snapshot::new(Arc::new(site))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Login>(data);
    let _ = serde_json::from_slice::<NewStaff>(data);
    let _ = serde_json::from_slice::<StaffChange>(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(fields) = kombinat::http::fields(&v) else {
        return;
    };
    let field = |k: &str| fields.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let has = |k: &str| fields.contains_key(k);
    let s = snapshot();
    let _ = kombinat::import::member_row(s, &field, &has);
    let _ = kombinat::import::booking_fields(s, &SourceId::parse("fuzz").unwrap(), &field);
});
