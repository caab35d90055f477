//! [`Accounts`] end to end: login throttling.

use std::time::Duration;

use super::{err, ok, unique_address, unique_user};
use crate::{AccountSettings, Accounts, Error, Secret};

const WINDOW: Duration = Duration::from_secs(60);

/// Over `accounts`' store, with 3 failures per account and 5 per address in a minute: after 3
/// failed logins of an account (from any addresses, its name in any case) the account is
/// `Throttled` even with the right password, with a `retry_after` within the window, while
/// another account is not; after 5 failures from one address (for other accounts) an account
/// that never failed is `Throttled` from that address and logs in from another.
pub async fn throttles_accounts_and_addresses(accounts: &Accounts) {
    let settings = AccountSettings {
        failures_per_account: 3,
        failures_per_address: 5,
        failure_window: WINDOW,
        ..accounts.settings().clone()
    };
    let pw = Secret::new("correct horse battery");
    let wrong = Secret::new("not the password, no");

    let per_account = Accounts::new(accounts.store().clone(), settings.clone());
    let (user, other) = (unique_user("thr-acct"), unique_user("thr-other"));
    for u in [&user, &other] {
        ok(per_account.set_password(u, &pw).await, "set_password");
    }
    let mixed: String = user
        .as_str()
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c })
        .collect();
    for name in [user.as_str().to_owned(), user.as_str().to_uppercase(), mixed] {
        let e = err(per_account.login(&name, &wrong, unique_address()).await, "wrong password");
        assert!(matches!(e, Error::Unauthenticated(_)), "not throttled before the limit: {e}");
    }
    let e = err(per_account.login(user.as_str(), &pw, unique_address()).await, "at the limit");
    assert_throttled(&e);
    let e = err(per_account.login(&user.as_str().to_uppercase(), &pw, unique_address()).await, "");
    assert_throttled(&e);
    ok(per_account.login(other.as_str(), &pw, unique_address()).await, "another account");

    let per_address = Accounts::new(accounts.store().clone(), settings);
    let from = unique_address();
    for _ in 0..5 {
        let nobody = unique_user("thr-nobody");
        let e = err(per_address.login(nobody.as_str(), &wrong, from).await, "a failure");
        assert!(matches!(e, Error::Unauthenticated(_)), "not throttled before the limit: {e}");
    }
    let e = err(per_address.login(other.as_str(), &pw, from).await, "the address at its limit");
    assert_throttled(&e);
    ok(per_address.login(other.as_str(), &pw, unique_address()).await, "from another address");

    for u in [&user, &other] {
        ok(accounts.delete_user(u).await, "cleanup");
    }
}

fn assert_throttled(e: &Error) {
    match e {
        Error::Throttled { retry_after } => {
            assert!(!retry_after.is_zero() && *retry_after <= WINDOW, "{retry_after:?}");
        }
        other => panic!("expected Throttled, got {other}"),
    }
}
