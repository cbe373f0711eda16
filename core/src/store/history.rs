//! Occupancy history records and the outbox, shared by both stores: the bucket type, its
//! compact binary form (24 bytes a bucket, as there are hundreds of thousands), merging, and
//! the plan for downsampling old five-minute buckets into hourly ones.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::RoomId;

/// A five-minute bucket, seconds.
pub const FINE_S: u32 = 300;
/// An hourly bucket, seconds.
pub const HOUR_S: u32 = 3600;

/// One bucket of a room's occupancy history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBucket {
    pub room: RoomId,
    /// Start, Unix seconds (a multiple of `span_s`).
    pub start: i64,
    /// Length: [`FINE_S`] or [`HOUR_S`].
    pub span_s: u32,
    /// Head count integrated over the seconds observed (person-seconds): the mean is
    /// `person_s / observed_s`.
    pub person_s: u64,
    /// Seconds the gateway was watching (less than the span after a restart).
    pub observed_s: u32,
    /// The highest head count seen.
    pub peak: u32,
    /// Seconds the room was occupied.
    pub occupied_s: u32,
}

impl HistoryBucket {
    /// An empty bucket.
    pub fn new(room: RoomId, start: i64, span_s: u32) -> Self {
        HistoryBucket {
            room,
            start,
            span_s,
            person_s: 0,
            observed_s: 0,
            peak: 0,
            occupied_s: 0,
        }
    }

    /// Adds what another bucket of the same room and time saw (a partial bucket written at a
    /// stop, continued after the restart; five-minute buckets into their hour).
    pub fn merge(&mut self, o: &HistoryBucket) {
        self.person_s += o.person_s;
        self.observed_s = self.observed_s.saturating_add(o.observed_s);
        self.occupied_s = self.occupied_s.saturating_add(o.occupied_s);
        self.peak = self.peak.max(o.peak);
    }

    /// Mean head count over the seconds observed.
    pub fn mean(&self) -> f64 {
        if self.observed_s == 0 {
            0.0
        } else {
            self.person_s as f64 / f64::from(self.observed_s)
        }
    }

    /// The key: room, a zero byte, the start (big-endian, sign bit flipped, so keys sort by
    /// time within a room).
    pub fn key(room: RoomId, start: i64) -> Vec<u8> {
        let mut k = room.as_str().as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
        k
    }

    pub fn encode(&self) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[0..4].copy_from_slice(&self.span_s.to_be_bytes());
        v[4..12].copy_from_slice(&self.person_s.to_be_bytes());
        v[12..16].copy_from_slice(&self.observed_s.to_be_bytes());
        v[16..20].copy_from_slice(&self.peak.to_be_bytes());
        v[20..24].copy_from_slice(&self.occupied_s.to_be_bytes());
        v
    }

    pub fn decode(key: &[u8], v: &[u8]) -> Result<HistoryBucket, StoreError> {
        let bad = |why: &str| StoreError::Corrupt {
            tree: "history",
            key: String::from_utf8_lossy(key).into_owned(),
            why: why.into(),
        };
        let zero = key
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| bad("no room"))?;
        let room = std::str::from_utf8(&key[..zero])
            .ok()
            .and_then(|s| RoomId::parse(s).ok())
            .ok_or_else(|| bad("bad room"))?;
        let t: [u8; 8] = key[zero + 1..].try_into().map_err(|_| bad("bad start"))?;
        if v.len() != 24 {
            return Err(bad("not 24 bytes"));
        }
        let u32_at = |i: usize| u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let mut p = [0u8; 8];
        p.copy_from_slice(&v[4..12]);
        let b = HistoryBucket {
            room,
            start: (u64::from_be_bytes(t) ^ (1 << 63)) as i64,
            span_s: u32_at(0),
            person_s: u64::from_be_bytes(p),
            observed_s: u32_at(12),
            peak: u32_at(16),
            occupied_s: u32_at(20),
        };
        if b.span_s != FINE_S && b.span_s != HOUR_S {
            return Err(bad("unknown span"));
        }
        Ok(b)
    }
}

/// What downsampling does to one room's buckets older than the cut: five-minute buckets
/// merged into their hour (with an hourly bucket already there, if any).
#[derive(Debug, Default, PartialEq)]
pub struct Downsample {
    /// Hourly buckets to write (replacing whatever is at their key).
    pub put: Vec<HistoryBucket>,
    /// Keys (room, start) to remove.
    pub remove: Vec<(RoomId, i64)>,
}

/// Plans the downsampling of `old` (one room's buckets, in time order, all starting before the
/// cut, which is a whole hour).
pub fn downsample(old: &[HistoryBucket]) -> Downsample {
    let mut d = Downsample::default();
    let mut i = 0;
    while i < old.len() {
        let hour = old[i].start.div_euclid(i64::from(HOUR_S)) * i64::from(HOUR_S);
        let mut j = i;
        while j < old.len()
            && old[j].start.div_euclid(i64::from(HOUR_S)) * i64::from(HOUR_S) == hour
        {
            j += 1;
        }
        let group = &old[i..j];
        if group.iter().any(|b| b.span_s == FINE_S) {
            let mut h = HistoryBucket::new(old[i].room, hour, HOUR_S);
            for b in group {
                h.merge(b);
                if b.start != hour {
                    d.remove.push((b.room, b.start));
                }
            }
            d.put.push(h);
        }
        i = j;
    }
    d
}

/// An event for the booking system, kept until it is delivered (the webhook sender takes them
/// in order and removes each once the receiver confirmed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Its id, unique and increasing (assigned by the store).
    pub id: u64,
    /// What it is: `no_show`, …
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The body to send (JSON).
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start: i64, span_s: u32, person_s: u64, peak: u32) -> HistoryBucket {
        HistoryBucket {
            room: RoomId::parse("meeting-1").unwrap(),
            start,
            span_s,
            person_s,
            observed_s: span_s,
            peak,
            occupied_s: if person_s > 0 { span_s } else { 0 },
        }
    }

    #[test]
    fn a_bucket_survives_its_binary_form_and_keys_sort_by_time() {
        for start in [-3600, 0, 1_795_680_000] {
            let x = b(start, FINE_S, 1234, 7);
            let k = HistoryBucket::key(x.room, x.start);
            assert_eq!(HistoryBucket::decode(&k, &x.encode()).unwrap(), x);
        }
        let room = RoomId::parse("meeting-1").unwrap();
        assert!(HistoryBucket::key(room, -300) < HistoryBucket::key(room, 0));
        assert!(HistoryBucket::key(room, 300) < HistoryBucket::key(room, 600));
        assert!(HistoryBucket::decode(b"meeting-1", &[0; 24]).is_err());
        let k = HistoryBucket::key(room, 0);
        assert!(HistoryBucket::decode(&k, &[0; 23]).is_err());
        assert!(
            HistoryBucket::decode(&k, &[0; 24]).is_err(),
            "span 0 is not a span"
        );
    }

    #[test]
    fn downsampling_merges_five_minute_buckets_into_their_hour() {
        let h = 1_795_680_000; // a whole hour
        let old = [
            b(h, FINE_S, 300, 1),
            b(h + 300, FINE_S, 600, 3),
            b(h + 3600, HOUR_S, 3600, 2), // already hourly: untouched
            b(h + 7200 + 600, FINE_S, 0, 0),
        ];
        let d = downsample(&old);
        assert_eq!(d.put.len(), 2);
        assert_eq!(
            (
                d.put[0].start,
                d.put[0].span_s,
                d.put[0].person_s,
                d.put[0].peak
            ),
            (h, HOUR_S, 900, 3)
        );
        assert_eq!(d.put[0].observed_s, 600);
        assert!((d.put[0].mean() - 1.5).abs() < 1e-9);
        assert_eq!((d.put[1].start, d.put[1].observed_s), (h + 7200, 300));
        assert_eq!(
            d.remove,
            vec![(old[1].room, h + 300), (old[3].room, h + 7800)]
        );
    }
}
