//! Readers for the two public UCI occupancy datasets kept in `shared/data/occupancy`
//! (see its PROVENANCE.md): "Occupancy Detection" (Candanedo & Feldheim 2016) and "Room
//! Occupancy Estimation" (Singh et al.). Used to calibrate and to measure the detector.

use std::path::Path;

use super::detector::{CountSample, Sample};

/// Why a dataset file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UciError {
    /// The file.
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{file}:{line}: {why}")]
    Line {
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

fn read(path: &Path) -> Result<String, UciError> {
    std::fs::read_to_string(path).map_err(|e| UciError::Io(path.display().to_string(), e))
}

fn num(field: Option<&str>, what: &str) -> Result<f32, String> {
    field
        .ok_or_else(|| format!("no {what}"))?
        .trim()
        .trim_matches('"')
        .parse()
        .map_err(|_| format!("{what} is not a number"))
}

/// Reads `datatraining.txt` / `datatest.txt`: one sample a minute, with the CO2 slope over the
/// last five minutes worked out as a sensor node would, and the occupied label.
pub fn detection(path: &Path) -> Result<Vec<(Sample, bool)>, UciError> {
    Ok(detection_days(path)?
        .into_iter()
        .map(|(_, s, o)| (s, o))
        .collect())
}

/// [`detection`] with each sample's day (`YYYY-MM-DD`), to fit on some days and test on others.
pub fn detection_days(path: &Path) -> Result<Vec<(String, Sample, bool)>, UciError> {
    let text = read(path)?;
    let file = path.display().to_string();
    let mut out: Vec<(String, Sample, bool)> = Vec::new();
    let mut co2s: Vec<f32> = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let err = |why: String| UciError::Line {
            file: file.clone(),
            line: i + 1,
            why,
        };
        // "id","date",Temperature,Humidity,Light,CO2,HumidityRatio,Occupancy
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return Err(err(format!("{} fields, expected 8", f.len())));
        }
        let light = num(f.get(4).copied(), "Light").map_err(err)?;
        let co2 = num(f.get(5).copied(), "CO2").map_err(err)?;
        let occupied = match f[7].trim() {
            "1" => true,
            "0" => false,
            other => return Err(err(format!("Occupancy {other:?} is not 0 or 1"))),
        };
        co2s.push(co2);
        let back = co2s.len().min(6) - 1;
        let slope = if back == 0 {
            0.0
        } else {
            (co2 - co2s[co2s.len() - 1 - back]) / back as f32
        };
        let day: String = f[1].trim().trim_matches('"').chars().take(10).collect();
        out.push((
            day,
            Sample {
                light: Some(light),
                co2: Some(co2),
                co2_slope: Some(slope),
            },
            occupied,
        ));
    }
    Ok(out)
}

/// The Room Occupancy Estimation file read for presence, as one room sensor would see it: the
/// brightest workplace light, the room's CO2 and its slope over the last five minutes (worked
/// out from the readings, every 30 s or so), occupied when anyone is there; with each day.
pub fn estimation_presence(path: &Path) -> Result<Vec<(String, Sample, bool)>, UciError> {
    let text = read(path)?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    // (day, second of the day, CO2) of the last five minutes.
    let mut back: std::collections::VecDeque<(String, i64, f32)> = Default::default();
    for (i, line) in text.lines().enumerate().skip(1) {
        let err = |why: String| UciError::Line {
            file: file.clone(),
            line: i + 1,
            why,
        };
        let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if f.len() != 19 {
            return Err(err(format!("{} fields, expected 19", f.len())));
        }
        let secs = {
            let hms: Vec<i64> = f[1]
                .split(':')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            match hms.as_slice() {
                [h, m, s] => h * 3600 + m * 60 + s,
                _ => return Err(err(format!("time {:?} is not HH:MM:SS", f[1]))),
            }
        };
        let mut light = 0f32;
        for k in 0..4 {
            light = light.max(num(f.get(6 + k).copied(), "light").map_err(err)?);
        }
        let co2 = num(f.get(14).copied(), "CO2").map_err(err)?;
        let count = f[18]
            .trim()
            .parse::<u8>()
            .map_err(|_| err("the count is not a number".into()))?;
        let day = f[0].to_string();
        back.retain(|(d, t, _)| *d == day && secs - t <= 300);
        let slope = back
            .front()
            .filter(|(_, t, _)| secs > *t)
            .map_or(0.0, |(_, t, c)| (co2 - c) / ((secs - t) as f32 / 60.0));
        back.push_back((day.clone(), secs, co2));
        out.push((
            day,
            Sample {
                light: Some(light),
                co2: Some(co2),
                co2_slope: Some(slope),
            },
            count > 0,
        ));
    }
    Ok(out)
}

/// Reads the Room Occupancy Estimation file: the four workplace lights, the two PIRs, CO2, the
/// day (for leave-one-day-out) and the head count.
pub fn estimation(path: &Path) -> Result<Vec<CountSample>, UciError> {
    let text = read(path)?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let err = |why: String| UciError::Line {
            file: file.clone(),
            line: i + 1,
            why,
        };
        // Date,Time,S1..S4_Temp,S1..S4_Light,S1..S4_Sound,S5_CO2,S5_CO2_Slope,S6_PIR,S7_PIR,Count
        let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if f.len() != 19 {
            return Err(err(format!("{} fields, expected 19", f.len())));
        }
        let mut lights = [0f32; 4];
        for (k, l) in lights.iter_mut().enumerate() {
            *l = num(f.get(6 + k).copied(), "light").map_err(err)?;
        }
        let pir = num(f.get(16).copied(), "PIR").map_err(err)? > 0.0
            || num(f.get(17).copied(), "PIR").map_err(err)? > 0.0;
        let count = f[18]
            .trim()
            .parse::<u8>()
            .map_err(|_| err("the count is not a number".into()))?;
        out.push(CountSample {
            day: f[0].to_string(),
            lights,
            motion: pir,
            count,
        });
    }
    Ok(out)
}
