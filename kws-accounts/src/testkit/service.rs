//! [`Accounts`] end to end: logins, sessions, passwords and refused input.

use std::time::Duration;

use super::{err, now, ok, unique_address, unique_user};
use crate::{AccountSettings, Accounts, Authenticated, Error, Secret, TokenScopes, Via};

/// A right password makes a new session on every login (two logins: two cookies, both
/// valid, each read back from the store as answered; the name's case does not matter);
/// a wrong password, an unknown user and a name that is no user's all fail with the one
/// `Unauthenticated` error; a session cookie is not a token; `logout` ends exactly that
/// session (and is idempotent); `set_password` ends every session of the user and only the
/// new password logs in; a session ends on its own after the settings' `session_ttl`.
pub async fn login_logout_and_password(accounts: &Accounts) {
    let user = unique_user("login");
    let pw = Secret::new("correct horse battery");
    ok(accounts.set_password(&user, &pw).await, "set_password");
    let first = ok(accounts.login(user.as_str(), &pw, unique_address()).await, "login");
    let upper = user.as_str().to_uppercase();
    let second = ok(accounts.login(&upper, &pw, unique_address()).await, "login in capitals");
    assert_ne!(first.secret, second.secret, "each login makes a new cookie");
    assert_ne!(first.record.id, second.record.id, "and a new session");
    for s in [&first, &second] {
        assert_eq!(s.record.user, user);
        assert_eq!(s.record.hash, s.secret.digest(), "the row holds the cookie's digest");
        let stored = ok(accounts.store().session_by_hash(&s.record.hash).await, "session_by_hash");
        assert_eq!(stored.as_ref(), Some(&s.record), "the session is stored as answered");
        let who = ok(accounts.session(&s.secret).await, "session");
        let via = Via::Session { id: s.record.id };
        assert_eq!(who, Authenticated { user: user.clone(), via });
        assert_eq!(who.scopes(), TokenScopes::all(), "a session may do everything");
        let e = err(accounts.token(&s.secret).await, "a session cookie used as a token");
        assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    }

    let wrong = Secret::new("correct horse battery!");
    let refusals = [
        err(accounts.login(user.as_str(), &wrong, unique_address()).await, "wrong password"),
        err(accounts.login(unique_user("nobody").as_str(), &pw, unique_address()).await, "nobody"),
        err(accounts.login("not a label!", &pw, unique_address()).await, "a name that is no label"),
        err(accounts.login("", &pw, unique_address()).await, "an empty name"),
    ];
    for e in &refusals {
        assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
        assert_eq!(e.to_string(), refusals[0].to_string(), "every refusal says the same");
    }

    ok(accounts.logout(&first.secret).await, "logout");
    let e = err(accounts.session(&first.secret).await, "a session after logout");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    ok(accounts.session(&second.secret).await, "logout ends only that session");
    ok(accounts.logout(&first.secret).await, "logout again");
    ok(accounts.logout(&Secret::generate("")).await, "logout of an unknown cookie");

    let new_pw = Secret::new("battery staple horse");
    ok(accounts.set_password(&user, &new_pw).await, "set_password again");
    let e = err(accounts.session(&second.secret).await, "a session after set_password");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    let e = err(accounts.login(user.as_str(), &pw, unique_address()).await, "the old password");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    let third = ok(accounts.login(user.as_str(), &new_pw, unique_address()).await, "new password");

    let settings =
        AccountSettings { session_ttl: Duration::from_secs(1), ..accounts.settings().clone() };
    let brief = Accounts::new(accounts.store().clone(), settings);
    let before = now();
    let short = ok(brief.login(user.as_str(), &new_pw, unique_address()).await, "login");
    assert!(short.record.expires_at >= before + chrono::Duration::seconds(1));
    ok(brief.session(&short.secret).await, "a session before its end");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = err(brief.session(&short.secret).await, "a session after its end");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");

    ok(accounts.delete_user(&user).await, "delete_user");
    let e = err(accounts.session(&third.secret).await, "a session of a deleted user");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    let e = err(accounts.login(user.as_str(), &new_pw, unique_address()).await, "deleted user");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
}

/// Token names that are empty, longer than 64 characters, hold control characters or begin
/// or end with a space are `Invalid` naming `name`, and make no token; passwords outside 12 to
/// 1,024 characters (counted as characters, not bytes) are `Invalid` naming `password`, and
/// set nothing; a `ttl` beyond any date is `Invalid` naming `ttl`.
pub async fn hostile_input_is_invalid(accounts: &Accounts) {
    let user = unique_user("hostile");
    let all = TokenScopes::all();
    let long = "a".repeat(65);
    for name in ["", &long, "a\u{0}b", "tab\there", "line\n", "\u{7f}", "nel\u{85}"] {
        let e = err(accounts.create_token(&user, name, all, None).await, "a hostile token name");
        assert!(matches!(e, Error::Invalid { field: "name", .. }), "{name:?}: {e}");
    }
    for name in [" leading", "trailing ", "\u{a0}nbsp"] {
        let e = err(accounts.create_token(&user, name, all, None).await, "a name with spaces");
        assert!(matches!(e, Error::Invalid { field: "name", .. }), "{name:?}: {e}");
    }
    assert_eq!(ok(accounts.tokens(&user).await, "tokens"), [], "no refused name made a token");
    for name in ["a".repeat(64), "é".repeat(64), "my laptop".into()] {
        ok(accounts.create_token(&user, &name, all, None).await, "a name at the limits");
    }
    let e = err(
        accounts.create_token(&user, "forever", all, Some(Duration::MAX)).await,
        "a ttl beyond any date",
    );
    assert!(matches!(e, Error::Invalid { field: "ttl", .. }), "{e}");

    for pw in [String::new(), "elevenchars".into(), "é".repeat(11), "x".repeat(1025)] {
        let e = err(accounts.set_password(&user, &Secret::new(pw)).await, "a bad password");
        assert!(matches!(e, Error::Invalid { field: "password", .. }), "{e}");
    }
    assert_eq!(ok(accounts.store().password(&user).await, "password"), None);
    ok(accounts.set_password(&user, &Secret::new("é".repeat(12))).await, "12 characters");
    ok(accounts.delete_user(&user).await, "cleanup");
}
