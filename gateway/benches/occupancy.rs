//! Occupancy detection accuracy on the public UCI data in shared/data/occupancy.
//!
//! - `occupancy_accuracy_datatest`: the presence detector fitted on `datatraining.txt`, right
//!   on what share of `datatest.txt` (light and CO2); also printed: CO2 alone, light alone.
//! - `occupancy_count_accuracy`: exact head counts from workplace lights on the Room Occupancy
//!   Estimation file, each day counted by a model fitted on the other days; also printed: on the
//!   occupied samples only, and the "always empty" baseline.

use std::path::Path;
use std::time::Instant;

use kombinat::occupancy::detector::{leave_one_day_out, PresenceDetector, Sample};
use kombinat::occupancy::uci;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/occupancy");
    let train = uci::detection(&dir.join("datatraining.txt")).unwrap_or_else(|e| panic!("{e}"));
    let test = uci::detection(&dir.join("datatest.txt")).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let d = PresenceDetector::fit(&train);
    println!(
        "fitted on {} samples in {:.2} s: {}",
        train.len(),
        t.elapsed().as_secs_f64(),
        d.explain()
    );
    let both = d.accuracy(&test, |s| *s);
    let co2 = d.accuracy(&test, |s| Sample { light: None, ..*s });
    let light = d.accuracy(&test, |s| Sample { co2: None, ..*s });
    println!(
        "datatest.txt ({} samples): light+CO2 {:.2} %, CO2 only {:.2} %, light only {:.2} %",
        test.len(),
        both * 100.0,
        co2 * 100.0,
        light * 100.0
    );
    println!(
        "bench: occupancy_accuracy_datatest {:.2} percent",
        both * 100.0
    );

    let est = uci::estimation(&dir.join("Occupancy_Estimation_2017-12.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (all, occupied) = leave_one_day_out(&est);
    let empty = est.iter().filter(|s| s.count == 0).count() as f64 / est.len() as f64;
    println!(
        "Occupancy_Estimation ({} samples, leave one day out): exact count {:.2} %, on occupied samples {:.2} %, always-empty baseline {:.2} %",
        est.len(), all * 100.0, occupied * 100.0, empty * 100.0
    );
    println!("bench: occupancy_count_accuracy {:.2} percent", all * 100.0);
}
