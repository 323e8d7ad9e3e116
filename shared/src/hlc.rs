//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A timestamp is `(wall_ms, counter)`: milliseconds since the Unix epoch (UTC) taken from
//! the largest physical time seen so far, plus a counter that orders events within one
//! millisecond. It never goes backwards even when the device clock does, so facts are
//! ordered without trusting the device clock. This module holds no clock: callers pass the
//! physical time in, which keeps it deterministic in tests.

use serde::{Deserialize, Serialize};

/// One HLC timestamp. Ordered by `wall_ms`, then `counter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct HlcTimestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z (the logical "physical" part).
    pub wall_ms: u64,
    /// Tie-breaker within one `wall_ms`.
    pub counter: u32,
}

/// A hybrid logical clock for one node. Not thread-safe by itself: the node keeps it
/// behind its single writer.
#[derive(Debug, Clone, Default)]
pub struct Hlc {
    last: HlcTimestamp,
}

impl Hlc {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that continues after `last` (e.g. the newest timestamp found on disk).
    pub fn resume(last: HlcTimestamp) -> Self {
        Self { last }
    }

    /// Timestamps a local event at physical time `now_ms` (ms since epoch, UTC).
    pub fn tick(&mut self, now_ms: u64) -> HlcTimestamp {
        self.last = if now_ms > self.last.wall_ms {
            HlcTimestamp {
                wall_ms: now_ms,
                counter: 0,
            }
        } else {
            HlcTimestamp {
                wall_ms: self.last.wall_ms,
                counter: self.last.counter.saturating_add(1),
            }
        };
        self.last
    }

    /// Merges a timestamp received from another node so later local events order after it.
    pub fn observe(&mut self, remote: HlcTimestamp, now_ms: u64) -> HlcTimestamp {
        let wall = now_ms.max(remote.wall_ms).max(self.last.wall_ms);
        let counter = if wall == self.last.wall_ms && wall == remote.wall_ms {
            self.last.counter.max(remote.counter).saturating_add(1)
        } else if wall == self.last.wall_ms {
            self.last.counter.saturating_add(1)
        } else if wall == remote.wall_ms {
            remote.counter.saturating_add(1)
        } else {
            0
        };
        self.last = HlcTimestamp {
            wall_ms: wall,
            counter,
        };
        self.last
    }

    /// The newest timestamp issued or observed.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn survives_clock_going_backwards() {
        let mut c = Hlc::new();
        let a = c.tick(1000);
        let b = c.tick(500); // device clock jumped back
        let d = c.tick(1000);
        assert!(a < b && b < d);
    }

    proptest! {
        #[test]
        fn strictly_monotonic(times in proptest::collection::vec((0u64..5000, any::<bool>(), 0u64..5000, 0u32..3), 1..200)) {
            let mut c = Hlc::new();
            let mut prev = HlcTimestamp::default();
            for (now, remote, rwall, rcount) in times {
                let t = if remote { c.observe(HlcTimestamp { wall_ms: rwall, counter: rcount }, now) } else { c.tick(now) };
                prop_assert!(t > prev || prev == HlcTimestamp::default() && t >= prev);
                let r = HlcTimestamp { wall_ms: rwall, counter: rcount };
                if remote { prop_assert!(t > r); }
                prev = t;
            }
        }
    }
}
