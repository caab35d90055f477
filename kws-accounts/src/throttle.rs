//! Login throttling: failed logins counted per account and per address in a window.
//!
//! In memory, per process: a restart forgets the counts (the window is minutes), and several
//! control planes each count their own share. Counts are kept for at most 10,000 keys of each
//! kind; beyond that, the oldest windows are dropped first.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::AccountSettings;

/// Keys kept per kind before old windows are dropped.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub(crate) struct Throttle {
    per_account: u32,
    per_address: u32,
    window: Duration,
    accounts: Mutex<HashMap<String, Window>>,
    addresses: Mutex<HashMap<IpAddr, Window>>,
}

impl Throttle {
    pub(crate) fn new(settings: &crate::AccountSettings) -> Self {
        let AccountSettings { failures_per_account, failures_per_address, failure_window, .. } =
            settings;
        Self {
            per_account: *failures_per_account,
            per_address: *failures_per_address,
            window: *failure_window,
            accounts: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// `Err(retry_after)` when the account or the address has used its failures.
    pub(crate) fn check(&self, user: &str, from: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let account = blocked(&self.accounts, user, self.per_account, self.window, now);
        let address = blocked(&self.addresses, &from, self.per_address, self.window, now);
        match account.max(address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub(crate) fn failed(&self, user: &str, from: IpAddr) {
        let now = Instant::now();
        count(&self.accounts, user.to_owned(), self.window, now);
        count(&self.addresses, from, self.window, now);
    }

    /// A success clears the account's failures (not the address's).
    pub(crate) fn succeeded(&self, user: &str) {
        lock(&self.accounts).remove(user);
    }
}

fn lock<K>(m: &Mutex<HashMap<K, Window>>) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn blocked<K, Q>(
    m: &Mutex<HashMap<K, Window>>,
    key: &Q,
    limit: u32,
    window: Duration,
    now: Instant,
) -> Option<Duration>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let w = *lock(m).get(key)?;
    let elapsed = now.duration_since(w.started);
    (elapsed < window && w.failures >= limit).then(|| window - elapsed)
}

fn count<K: std::hash::Hash + Eq + Clone>(
    m: &Mutex<HashMap<K, Window>>,
    key: K,
    window: Duration,
    now: Instant,
) {
    let mut map = lock(m);
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        map.retain(|_, w| now.duration_since(w.started) < window);
        if map.len() >= MAX_KEYS {
            let oldest = map.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
    }
    let w = map.entry(key).or_insert(Window { started: now, failures: 0 });
    if now.duration_since(w.started) >= window {
        *w = Window { started: now, failures: 0 };
    }
    w.failures += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_the_account_and_the_address() {
        let settings = AccountSettings {
            failures_per_account: 2,
            failures_per_address: 3,
            ..AccountSettings::default()
        };
        let t = Throttle::new(&settings);
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        t.failed("alice", a);
        assert!(t.check("alice", a).is_ok());
        t.failed("alice", b);
        assert!(t.check("alice", b).is_err(), "the account is blocked from any address");
        assert!(t.check("bob", b).is_ok());
        t.failed("bob", a);
        t.failed("carol", a);
        assert!(t.check("dave", a).is_err(), "the address is blocked for any account");
        assert!(t.check("dave", b).is_ok());
    }
}
