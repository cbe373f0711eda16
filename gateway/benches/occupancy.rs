//! Occupancy detection accuracy on the public UCI data in shared/data/occupancy, as
//! generalisation, never as fit: every figure is on samples the model was not fitted on, and
//! each is printed beside the "always empty" baseline of the same samples.
//!
//! - `occupancy_accuracy_datatest`: the presence thresholds fitted on `datatraining.txt`, on
//!   `datatest.txt` (other days of the same room); every other `datatest*.txt` present is
//!   scored the same way. Also: CO2 alone, light alone.
//! - `occupancy_accuracy_days_out`: the thresholds fitted on all days but one of the detection
//!   files and scored on the day left out, for every day.
//! - `occupancy_self_calibrating_*`: a room of the gateway predicts each sample before its
//!   label is known and learns from its own ground truth (one label in `every`), starting from
//!   the thresholds above (`detector::RoomModel`); `_other_room` on the Room Occupancy
//!   Estimation room, never fitted on (desk lamps, another CO2 sensor).
//! - `occupancy_count_accuracy`: exact head counts from workplace lights on the Room Occupancy
//!   Estimation file, each day counted by a model fitted on the other days; also printed: on the
//!   occupied samples only, and the "always empty" baseline.

use std::path::Path;
use std::time::Instant;

use kombinat::occupancy::detector::{
    leave_one_day_out, self_calibrating_accuracy, PresenceDetector, Sample,
};
use kombinat::occupancy::uci;

fn empty_share(data: &[(Sample, bool)]) -> f64 {
    data.iter().filter(|(_, o)| !o).count() as f64 / data.len().max(1) as f64
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// The self-calibrating room on `data`, learning from every label, one in ten, one in sixty.
fn calibrating(d: &PresenceDetector, name: &str, data: &[(Sample, bool)]) -> [f64; 3] {
    let r = [1, 10, 60].map(|every| self_calibrating_accuracy(d, data, every));
    println!(
        "{name}: self-calibrating, learning from every label {}, one in ten {}, one in sixty {} (thresholds alone {}, always empty {})",
        pct(r[0]),
        pct(r[1]),
        pct(r[2]),
        pct(d.accuracy(data, |s| *s)),
        pct(empty_share(data))
    );
    r
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/occupancy");
    let train = uci::detection(&dir.join("datatraining.txt")).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let d = PresenceDetector::fit(&train);
    println!(
        "fitted on {} samples in {:.2} s: {}",
        train.len(),
        t.elapsed().as_secs_f64(),
        d.explain()
    );
    // Every held-out file of the same room that is present (datatest.txt, datatest2.txt, …).
    let mut tests: Vec<_> = std::fs::read_dir(&dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("datatest") && n.ends_with(".txt"))
                })
                .collect()
        })
        .unwrap_or_default();
    tests.sort();
    let mut all_days = uci::detection_days(&dir.join("datatraining.txt")).unwrap_or_default();
    for path in &tests {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let test = uci::detection(path).unwrap_or_else(|e| panic!("{e}"));
        all_days.extend(uci::detection_days(path).unwrap_or_default());
        let both = d.accuracy(&test, |s| *s);
        let co2 = d.accuracy(&test, |s| Sample { light: None, ..*s });
        let light = d.accuracy(&test, |s| Sample { co2: None, ..*s });
        println!(
            "{name} ({} samples): light+CO2 {}, CO2 only {}, light only {}, always empty {}",
            test.len(),
            pct(both),
            pct(co2),
            pct(light),
            pct(empty_share(&test))
        );
        let stem = name.trim_end_matches(".txt");
        println!(
            "bench: occupancy_accuracy_{stem} {:.2} percent",
            both * 100.0
        );
        let [all, tenth, _] = calibrating(&d, &name, &test);
        println!(
            "bench: occupancy_self_calibrating_{stem} {:.2} percent (one label in ten: {:.2})",
            all * 100.0,
            tenth * 100.0
        );
    }

    // Fit on all days but one, score the day left out.
    let mut days: Vec<&str> = all_days.iter().map(|(d, _, _)| d.as_str()).collect();
    days.sort_unstable();
    days.dedup();
    let (mut right, mut empty, mut n) = (0usize, 0usize, 0usize);
    for day in &days {
        let fit_on: Vec<(Sample, bool)> = all_days
            .iter()
            .filter(|(d, _, _)| d != day)
            .map(|(_, s, o)| (*s, *o))
            .collect();
        let model = PresenceDetector::fit(&fit_on);
        for (_, s, o) in all_days.iter().filter(|(d, _, _)| d == day) {
            right += usize::from(model.occupied(s) == Some(*o));
            empty += usize::from(!o);
            n += 1;
        }
    }
    let days_out = right as f64 / n.max(1) as f64;
    println!(
        "detection files, {} days, each scored by thresholds fitted on the others: {} (always empty {})",
        days.len(),
        pct(days_out),
        pct(empty as f64 / n.max(1) as f64)
    );
    println!(
        "bench: occupancy_accuracy_days_out {:.2} percent",
        days_out * 100.0
    );

    // Another room, never fitted on.
    let est_path = dir.join("Occupancy_Estimation_2017-12.csv");
    let other: Vec<(Sample, bool)> = uci::estimation_presence(&est_path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(_, s, o)| (s, o))
        .collect();
    let [all, tenth, sixtieth] = calibrating(&d, "the Room Occupancy Estimation room", &other);
    println!(
        "bench: occupancy_self_calibrating_other_room {:.2} percent (one label in ten: {:.2}, in sixty: {:.2}; thresholds alone {:.2}; always empty {:.2})",
        all * 100.0,
        tenth * 100.0,
        sixtieth * 100.0,
        d.accuracy(&other, |s| *s) * 100.0,
        empty_share(&other) * 100.0
    );

    let est = uci::estimation(&est_path).unwrap_or_else(|e| panic!("{e}"));
    let (all, occupied) = leave_one_day_out(&est);
    let empty = est.iter().filter(|s| s.count == 0).count() as f64 / est.len() as f64;
    println!(
        "Occupancy_Estimation ({} samples, leave one day out): exact count {}, on occupied samples {}, always-empty baseline {}",
        est.len(), pct(all), pct(occupied), pct(empty)
    );
    println!("bench: occupancy_count_accuracy {:.2} percent", all * 100.0);
}
