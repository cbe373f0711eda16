//! The off-the-shelf devices' messages (esp-rfid, Tasmota, Zigbee2MQTT) through the adapters of
//! the example site's bindings, as the gateway takes them. Input: the topic, a newline, the
//! payload. Nothing may panic.
#![no_main]

use std::sync::OnceLock;

use kombinat::adapters::Adapters;
use kombinat::domain::Site;
use libfuzzer_sys::fuzz_target;

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        kombinat::site_file::parse(include_str!("../../deploy/site.example.toml"))
            .expect("the example site reads")
    })
}

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => return,
    };
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    let mut a = Adapters::new(&site().bindings, |_| 5_000);
    let now = chrono::DateTime::from_timestamp(1_795_680_000, 0).unwrap();
    for retained in [false, true] {
        let _ = a.handle(topic, payload, retained, now);
    }
    let _ = a.due(now);
});
