//! A small site for tests of the core and of the gateway around it (the `testing` feature):
//! three floors, a lobby, coworking, meeting rooms, a hall, a lab, offices, hostel rooms and
//! the shelter, with their doors, plans and leases.
#![allow(missing_docs)]

use std::sync::Arc;

use crate::domain::Site;

pub const SITE: &str = r#"
[site]
name = "Test centre"
timezone = "Europe/Kyiv"
shelter = "shelter"

[access]
booking_grace_before_min = 15
booking_grace_after_min = 15
check_in = "14:00"
check_out = "11:00"

[calendar]
holidays = [2026-12-25]

[[floors]]
id = "f0"
name = "Ground"
level = 0
[[floors]]
id = "f1"
name = "First"
level = 1
[[floors]]
id = "b1"
name = "Basement"
level = -1

[[zones]]
id = "common"
name = "Common"
[[zones]]
id = "coworking"
name = "Coworking"
[[zones]]
id = "labs"
name = "Labs"

[[rooms]]
id = "lobby"
name = "Lobby"
floor = "f0"
zones = ["common"]
kind = "lobby"
[[rooms]]
id = "gallery"
name = "Gallery"
floor = "f0"
kind = "gallery"
[[rooms]]
id = "coworking"
name = "Coworking"
floor = "f0"
zones = ["coworking"]
kind = "coworking"
capacity = 3
[[rooms]]
id = "meeting-1"
name = "Meeting room 1"
floor = "f0"
kind = "meeting"
capacity = 8
[[rooms]]
id = "hall"
name = "Hall"
floor = "f0"
kind = "conference"
[[rooms]]
id = "fablab"
name = "Fab lab"
floor = "f0"
zones = ["labs"]
kind = "lab"
certifications = ["induction-fablab"]
[[rooms]]
id = "corridor-f1"
name = "First-floor corridor"
floor = "f1"
zones = ["common"]
kind = "corridor"
[[rooms]]
id = "office-1"
name = "Office 1"
floor = "f1"
kind = "office"
[[rooms]]
id = "hostel-corridor"
name = "Hostel corridor"
floor = "f1"
kind = "corridor"
[[rooms]]
id = "hostel-h1"
name = "Hostel H1"
floor = "f1"
kind = "hostel"
capacity = 2
[[rooms]]
id = "hostel-h2"
name = "Hostel H2"
floor = "f1"
kind = "hostel"
[[rooms]]
id = "shelter"
name = "Shelter"
floor = "b1"
kind = "shelter"

[[doors]]
id = "d-main"
name = "Main entrance"
from = "outside"
into = "lobby"
egress = true
[[doors]]
id = "d-gallery"
name = "Gallery"
from = "lobby"
into = "gallery"
public_hours = "tue-sun 10:00-18:00"
[[doors]]
id = "d-cowork-in"
name = "Coworking turnstile in"
from = "lobby"
into = "coworking"
[[doors]]
id = "d-cowork-out"
name = "Coworking turnstile out"
from = "coworking"
into = "lobby"
[[doors]]
id = "d-meeting-1"
name = "Meeting room 1"
from = "lobby"
into = "meeting-1"
unlock_ms = 3000
[[doors]]
id = "d-hall"
name = "Hall"
from = "lobby"
into = "hall"
[[doors]]
id = "d-fablab"
name = "Fab lab"
from = "lobby"
into = "fablab"
[[doors]]
id = "d-stairs-f1"
name = "Stairs to first floor"
from = "lobby"
into = "corridor-f1"
egress = true
[[doors]]
id = "d-office-1"
name = "Office 1"
from = "corridor-f1"
into = "office-1"
[[doors]]
id = "d-hostel"
name = "Hostel floor door"
from = "corridor-f1"
into = "hostel-corridor"
[[doors]]
id = "d-h1"
name = "Hostel H1"
from = "hostel-corridor"
into = "hostel-h1"
[[doors]]
id = "d-h2"
name = "Hostel H2"
from = "hostel-corridor"
into = "hostel-h2"
[[doors]]
id = "d-office-to-lab"
name = "Office 1 into the fab lab (a lateral door)"
from = "office-1"
into = "fablab"
[[doors]]
id = "d-shelter"
name = "Shelter"
from = "lobby"
into = "shelter"
egress = true

[[anti_passback]]
entry = "d-cowork-in"
exit = "d-cowork-out"

[[plans]]
id = "day"
name = "Coworking day pass"
closed_on_holidays = true
grants = [{ zones = ["coworking", "common"], schedule = "mon-fri 08:00-20:00" }]

[[plans]]
id = "lab"
name = "Lab member"
grants = [{ zones = ["labs"], schedule = "mon-sat 09:00-21:00" }]

[[leases]]
id = "l-studio"
organisation = "studio"
room = "office-1"

[[leases]]
id = "l-studio-b"
organisation = "studio-b"
room = "office-1"
schedule = "daily 07:00-22:00"
"#;

pub fn test_site() -> Arc<Site> {
    static SITE_ONCE: std::sync::OnceLock<Arc<Site>> = std::sync::OnceLock::new();
    SITE_ONCE
        .get_or_init(|| Arc::new(crate::site_file::parse(SITE).expect("the test site parses")))
        .clone()
}
