//! The members and bookings CSV imports, row checks included, against the example site.
//! Nothing may panic; a bad row is an error with its line, never a crash.
#![no_main]

use std::sync::{Arc, OnceLock};

use kombinat::access::Snapshot;
use kombinat::domain::SourceId;
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
    let s = snapshot();
    let _ = kombinat::import::read_members(s, data, |_| {});
    let _ = kombinat::import::read_bookings(s, SourceId::parse("fuzz").unwrap(), data, |_| {});
});
