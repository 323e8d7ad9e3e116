//! Account lockout of head office's admin API logins, the same rule the node applies to
//! PINs and passwords: after `attempts` wrong passwords in a row for one username, that
//! username is locked for `lockout` (30 s by default), doubling for each further lock in
//! a row up to `lockout_max` (1 h). A success clears the count.
//!
//! Keyed by the username as typed (at most 64 characters), known or not, so a lock tells
//! nobody whether a username exists. While locked, a login is refused (423
//! `login-locked`) without checking the password, so guesses made during the lock learn
//! nothing. The per-address rate limit still applies in front of this; the lock is what
//! bounds guessing from many addresses.
//!
//! Counters are kept through [`LockoutDb`] (SQLite's `login_lockouts`), so a restart does
//! not clear a lock; counters untouched for a day are pruned on the next failure.

use crate::db::{DbError, LockoutDb};

/// How long an untouched row is kept: one day, in milliseconds.
const KEEP_MS: i64 = 86_400_000;

/// The lockout rule: `attempts` failures in a row, then `lockout_ms` doubling per lock up
/// to `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Wrong passwords in a row that lock (at least 1).
    pub attempts: u32,
    /// First lock, milliseconds.
    pub lockout_ms: i64,
    /// Longest lock, milliseconds.
    pub max_ms: i64,
}

/// When the lock on `username` ends (milliseconds since the epoch, UTC), if it is locked
/// at `now_ms`.
///
/// # Errors
/// [`DbError`].
pub fn locked_until(db: &impl LockoutDb, username: &str, now_ms: i64) -> Result<Option<i64>, DbError> {
    Ok(db.lock_end(username)?.filter(|u| *u > now_ms))
}

/// Counts a wrong password for `username` at `now_ms`; returns when the new lock ends if
/// this failure locked it.
///
/// # Errors
/// [`DbError`].
pub fn failed(
    db: &impl LockoutDb,
    username: &str,
    now_ms: i64,
    policy: Policy,
) -> Result<Option<i64>, DbError> {
    db.prune_locks(now_ms - KEEP_MS, now_ms)?;
    let (failures, lockouts) = db.lock_counts(username)?;
    let failures = failures + 1;
    let (failures, lockouts, until) = if failures >= policy.attempts.max(1) {
        let lockouts = lockouts + 1;
        let ms = caja_shared::auth::lock_length_ms(policy.lockout_ms, policy.max_ms, lockouts);
        (0, lockouts, now_ms.saturating_add(ms))
    } else {
        (failures, lockouts, 0)
    };
    db.save_lock(username, failures, lockouts, until, now_ms)?;
    Ok((until > 0).then_some(until))
}

/// Clears the count of `username` after a successful login.
///
/// # Errors
/// [`DbError`].
pub fn succeeded(db: &impl LockoutDb, username: &str) -> Result<(), DbError> {
    db.clear_lock(username)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const POLICY: Policy = Policy {
        attempts: 3,
        lockout_ms: 1000,
        max_ms: 2500,
    };

    #[test]
    fn locks_after_attempts_doubling_up_to_the_max_and_a_success_clears() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let t = 1_000_000;
        assert_eq!(failed(&conn, "ana", t, POLICY).unwrap(), None);
        assert_eq!(failed(&conn, "ana", t, POLICY).unwrap(), None);
        assert_eq!(locked_until(&conn, "ana", t).unwrap(), None);
        assert_eq!(failed(&conn, "ana", t, POLICY).unwrap(), Some(t + 1000));
        assert_eq!(locked_until(&conn, "ana", t + 999).unwrap(), Some(t + 1000));
        assert_eq!(locked_until(&conn, "ana", t + 1000).unwrap(), None);
        assert_eq!(
            locked_until(&conn, "bo", t).unwrap(),
            None,
            "other users unaffected"
        );
        // The next lock in a row doubles, then stops at the max.
        let t2 = t + 2000;
        for _ in 0..2 {
            failed(&conn, "ana", t2, POLICY).unwrap();
        }
        assert_eq!(failed(&conn, "ana", t2, POLICY).unwrap(), Some(t2 + 2000));
        let t3 = t2 + 3000;
        for _ in 0..2 {
            failed(&conn, "ana", t3, POLICY).unwrap();
        }
        assert_eq!(failed(&conn, "ana", t3, POLICY).unwrap(), Some(t3 + 2500));
        succeeded(&conn, "ana").unwrap();
        assert_eq!(locked_until(&conn, "ana", t3).unwrap(), None);
        assert_eq!(
            failed(&conn, "ana", t3, POLICY).unwrap(),
            None,
            "the count starts over"
        );
    }

    #[test]
    fn old_rows_are_pruned() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        failed(&conn, "nobody", 0, POLICY).unwrap();
        failed(&conn, "ana", KEEP_MS + 1, POLICY).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM login_lockouts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
