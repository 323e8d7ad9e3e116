//! Bounds on QUIC connections per remote IP address, checked before the TLS handshake:
//! how many may be live at once, and how many handshakes may start per minute.
//!
//! The handshake budget is split by whether QUIC has validated the client's address
//! (RFC 9000 §8.1: the client echoed a Retry or NEW_TOKEN token, so it really receives at
//! that address). An unvalidated attempt over its address's budget is answered with a
//! stateless Retry (cheap for us, one round trip for a real client), never refused: a
//! flood with a forged source address therefore cannot lock a real store out, because
//! the store's retried attempt comes back validated and is counted in the separate
//! validated budget, which a forger cannot spend. A validated attempt over budget, or any
//! attempt beyond the live-connection bound, is refused (QUIC CONNECTION_REFUSED).
//!
//! governor does the counting (GCRA; the same crate behind the admin API's limits); the
//! live count is a plain map because no crate bounds concurrent QUIC connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// What to do with an incoming connection.
pub(crate) enum Admission {
    /// Go ahead; the slot counts the connection as live until dropped.
    Accept(LiveSlot),
    /// Ask the client to prove its address first (a QUIC Retry).
    Retry,
    /// Refuse, for this reason (logged, not sent).
    Refuse(&'static str),
}

/// The per-address bounds and their counters. Shared by the accept loop and the slots.
pub(crate) struct ConnLimits {
    per_ip: u32,
    live: Mutex<HashMap<IpAddr, u32>>,
    unvalidated: DefaultKeyedRateLimiter<IpAddr>,
    validated: DefaultKeyedRateLimiter<IpAddr>,
    /// One warning per address per minute about its refusals; the rest go to debug.
    warnings: DefaultKeyedRateLimiter<IpAddr>,
}

impl ConnLimits {
    /// At most `per_ip` live connections and `handshakes_per_minute` handshakes (in each of
    /// the two budgets) per remote IP address; zero counts as one.
    pub fn new(per_ip: u32, handshakes_per_minute: u32) -> Arc<ConnLimits> {
        let quota = Quota::per_minute(NonZeroU32::new(handshakes_per_minute).unwrap_or(NonZeroU32::MIN));
        Arc::new(ConnLimits {
            per_ip: per_ip.max(1),
            live: Mutex::default(),
            unvalidated: RateLimiter::keyed(quota),
            validated: RateLimiter::keyed(quota),
            warnings: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
        })
    }

    /// Decides on a connection from `ip`, whose address QUIC has or has not validated.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, validated: bool) -> Admission {
        if validated {
            if self.validated.check_key(&ip).is_err() {
                return Admission::Refuse("too many connection attempts from this address");
            }
        } else if self.unvalidated.check_key(&ip).is_err() {
            return Admission::Retry;
        }
        let Ok(mut live) = self.live.lock() else {
            return Admission::Refuse("connection bookkeeping unavailable");
        };
        let n = live.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return Admission::Refuse("too many live connections from this address");
        }
        *n += 1;
        Admission::Accept(LiveSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Whether a refusal of `ip` should be logged as a warning now (once a minute per
    /// address, so a flood cannot flood the log, yet an operator sees why a store is shut
    /// out).
    pub fn warn_about(&self, ip: IpAddr) -> bool {
        self.warnings.check_key(&ip).is_ok()
    }

    /// Live connections from `ip` now.
    #[cfg(test)]
    fn live(&self, ip: IpAddr) -> u32 {
        self.live
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Forgets rate-limit state of addresses that have been quiet (memory bound).
    pub fn retain_recent(&self) {
        self.unvalidated.retain_recent();
        self.validated.retain_recent();
        self.warnings.retain_recent();
    }
}

/// One live connection of an address; dropping it frees the place.
pub(crate) struct LiveSlot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        if let Ok(mut live) = self.limits.live.lock()
            && let Some(n) = live.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn slot(a: Admission) -> LiveSlot {
        match a {
            Admission::Accept(s) => s,
            Admission::Retry => panic!("retry"),
            Admission::Refuse(r) => panic!("refused: {r}"),
        }
    }

    #[test]
    fn live_connections_are_bounded_per_address_and_freed_on_drop() {
        let limits = ConnLimits::new(2, 1000);
        let first = slot(limits.admit(A, true));
        let _second = slot(limits.admit(A, true));
        assert!(matches!(limits.admit(A, true), Admission::Refuse(r) if r.contains("live")));
        let _other = slot(limits.admit(B, true));
        drop(first);
        assert_eq!(limits.live(A), 1);
        let _third = slot(limits.admit(A, true));
        assert_eq!(limits.live(A), 2);
    }

    #[test]
    fn forged_floods_get_retries_and_cannot_spend_a_real_clients_budget() {
        let limits = ConnLimits::new(100, 3);
        // A forger sends unvalidated attempts "from" A: after the budget, Retry, never refused.
        for _ in 0..3 {
            drop(slot(limits.admit(A, false)));
        }
        for _ in 0..10 {
            assert!(matches!(limits.admit(A, false), Admission::Retry));
        }
        // The real A answers the Retry: validated, its own budget is whole.
        for _ in 0..3 {
            drop(slot(limits.admit(A, true)));
        }
        assert!(matches!(limits.admit(A, true), Admission::Refuse(r) if r.contains("attempts")));
        // Another address is unaffected.
        drop(slot(limits.admit(B, false)));
        assert_eq!(limits.live(A), 0);
    }
}
