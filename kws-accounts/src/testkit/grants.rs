//! Host grants: in a store, and end to end through [`Accounts`].

use chrono::Duration;
use uuid::Uuid;

use super::{err, now, ok, session, unique_address, unique_user};
use crate::{
    AccountSettings, AccountStore, Accounts, Error, GrantKind, GrantRecord, Secret, SessionRecord,
};

/// A grant of `session` for `host`, ending after `ttl`, with a fresh secret.
pub fn grant(session: &SessionRecord, kind: GrantKind, host: &str, ttl: Duration) -> GrantRecord {
    GrantRecord {
        hash: Secret::generate("").digest(),
        kind,
        session: session.id,
        user: session.user.clone(),
        host: host.to_owned(),
        expires_at: now() + ttl,
    }
}

/// A grant of a session that is not there is `NotFound` and adds nothing; a ticket is taken
/// once (and never by `cookie_grant`), a cookie is found while it and its session last and
/// never by `take_ticket`; removing a session (`delete_session`, `set_password`,
/// `delete_user`) removes its grants and no other session's.
pub async fn grants_follow_their_session(store: &dyn AccountStore) {
    let (alice, bob) = (unique_user("grant-a"), unique_user("grant-b"));
    let t = now();
    let a1 = session(&alice, t, Duration::hours(1));
    let a2 = session(&alice, t, Duration::hours(1));
    let b1 = session(&bob, t, Duration::hours(1));
    for s in [&a1, &a2, &b1] {
        ok(store.insert_session(s).await, "insert_session");
    }
    let host = "ide.kws.test";
    let orphan =
        grant(&session(&alice, t, Duration::hours(1)), GrantKind::Cookie, host, Duration::hours(1));
    let e = err(store.insert_grant(&orphan).await, "a grant of no session");
    assert!(matches!(e, Error::NotFound { what: "session" }), "{e}");
    assert_eq!(ok(store.cookie_grant(&orphan.hash, t).await, "cookie_grant"), None);

    let ticket = grant(&a1, GrantKind::Ticket, host, Duration::minutes(1));
    let cookie = grant(&a1, GrantKind::Cookie, host, Duration::hours(1));
    let short = grant(&a2, GrantKind::Cookie, host, Duration::seconds(-1));
    let bobs = grant(&b1, GrantKind::Cookie, host, Duration::hours(1));
    for g in [&ticket, &cookie, &short, &bobs] {
        ok(store.insert_grant(g).await, "insert_grant");
    }
    err(store.insert_grant(&cookie).await, "a second grant of one digest");
    assert_eq!(ok(store.cookie_grant(&ticket.hash, t).await, "a ticket as a cookie"), None);
    assert_eq!(ok(store.take_ticket(&cookie.hash).await, "a cookie as a ticket"), None);
    let found = ok(store.cookie_grant(&cookie.hash, t).await, "cookie_grant");
    assert_eq!(found.as_ref(), Some(&cookie), "a cookie reads back as inserted");
    assert_eq!(ok(store.cookie_grant(&short.hash, now()).await, "an ended cookie"), None);
    let late = a1.expires_at + Duration::seconds(1);
    assert_eq!(ok(store.cookie_grant(&cookie.hash, late).await, "after its session"), None);

    let taken = ok(store.take_ticket(&ticket.hash).await, "take_ticket");
    assert_eq!(taken.as_ref(), Some(&ticket), "a ticket is answered as inserted");
    assert_eq!(ok(store.take_ticket(&ticket.hash).await, "take_ticket again"), None);

    let again = grant(&a1, GrantKind::Ticket, host, Duration::minutes(1));
    ok(store.insert_grant(&again).await, "insert_grant");
    ok(store.delete_session(&alice, a1.id).await, "delete_session");
    assert_eq!(
        ok(store.cookie_grant(&cookie.hash, t).await, "a cookie of a deleted session"),
        None
    );
    assert_eq!(ok(store.take_ticket(&again.hash).await, "a ticket of a deleted session"), None);
    let found = ok(store.cookie_grant(&bobs.hash, t).await, "cookie_grant");
    assert_eq!(found.as_ref(), Some(&bobs), "another session's grant stays");

    ok(store.set_password(&bob, "$phc$").await, "set_password");
    assert_eq!(ok(store.cookie_grant(&bobs.hash, t).await, "after set_password"), None);
    let a3 = session(&alice, t, Duration::hours(1));
    ok(store.insert_session(&a3).await, "insert_session");
    let last = grant(&a3, GrantKind::Cookie, host, Duration::hours(1));
    ok(store.insert_grant(&last).await, "insert_grant");
    ok(store.delete_user(&alice).await, "delete_user");
    assert_eq!(ok(store.cookie_grant(&last.hash, t).await, "after delete_user"), None);
    ok(store.delete_user(&bob).await, "cleanup");
}

/// A ticket of a dashboard session for a host is traded, once, on that host only, for a
/// cookie of that host; a token, an ended session, an expired ticket, a used one, a ticket of
/// another host and a made-up one are refused; the cookie works on its host only and ends
/// with its session (logout); a ticket taken by many callers at once makes one cookie.
pub async fn tickets_end_to_end(accounts: &Accounts) {
    let user = unique_user("ticket");
    let pw = Secret::new("correct horse battery");
    ok(accounts.set_password(&user, &pw).await, "set_password");
    let login = ok(accounts.login(user.as_str(), &pw, unique_address()).await, "login");
    let caller = ok(accounts.session(&login.secret).await, "session");
    let host = "demo.kws.test";

    let ticket = ok(accounts.issue_ticket(&caller, "Demo.kws.test:8443").await, "issue_ticket");
    assert_eq!(ticket.record.host, host, "the host is kept without its port, in lowercase");
    assert!(ticket.secret.expose().starts_with(crate::TICKET_PREFIX));
    let refused =
        |what: &str, e: Error| assert!(matches!(e, Error::Unauthenticated(_)), "{what}: {e}");
    let other = ok(accounts.issue_ticket(&caller, host).await, "issue_ticket");
    refused(
        "another host",
        err(accounts.redeem_ticket(&other.secret, "evil.kws.test").await, "other host"),
    );
    refused(
        "used by the wrong host",
        err(accounts.redeem_ticket(&other.secret, host).await, "again"),
    );
    refused(
        "made up",
        err(accounts.redeem_ticket(&Secret::generate(crate::TICKET_PREFIX), host).await, "x"),
    );
    refused("a cookie value", err(accounts.redeem_ticket(&login.secret, host).await, "cookie"));
    let e = err(accounts.issue_ticket(&caller, "not a host!").await, "a bad host");
    assert!(matches!(e, Error::Invalid { field: "host", .. }), "{e}");

    let cookie = ok(accounts.redeem_ticket(&ticket.secret, "demo.kws.test:8443").await, "redeem");
    assert_eq!(cookie.record.kind, GrantKind::Cookie);
    assert_eq!(
        (cookie.record.user.clone(), cookie.record.session),
        (user.clone(), login.record.id)
    );
    refused("a used ticket", err(accounts.redeem_ticket(&ticket.secret, host).await, "used"));
    let found = ok(accounts.host_session(&cookie.secret, host).await, "host_session");
    assert_eq!(found, cookie.record);
    refused("on another host", err(accounts.host_session(&cookie.secret, "x.kws.test").await, "x"));
    refused("a ticket as a cookie", err(accounts.host_session(&other.secret, host).await, "t"));

    let token = ok(
        accounts.create_token(&user, "ci", crate::TokenScopes::all(), None).await,
        "create_token",
    );
    let by_token = ok(accounts.token(&token.secret).await, "token");
    refused("a token's ticket", err(accounts.issue_ticket(&by_token, host).await, "token"));

    // Many callers with one ticket: one cookie.
    let contested = ok(accounts.issue_ticket(&caller, host).await, "issue_ticket");
    let tries = (0..8).map(|_| {
        let (accounts, secret) = (accounts.clone(), contested.secret.clone());
        tokio::spawn(async move { accounts.redeem_ticket(&secret, host).await.is_ok() })
    });
    let mut won = 0;
    for t in tries {
        won += usize::from(ok(t.await, "join"));
    }
    assert_eq!(won, 1, "a ticket is traded once, however many try at once");

    let brief_settings = AccountSettings {
        ticket_ttl: std::time::Duration::from_millis(200),
        ..accounts.settings().clone()
    };
    let brief = Accounts::new(accounts.store().clone(), brief_settings);
    let stale = ok(brief.issue_ticket(&caller, host).await, "issue_ticket");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    refused("an expired ticket", err(accounts.redeem_ticket(&stale.secret, host).await, "stale"));

    let pending = ok(accounts.issue_ticket(&caller, host).await, "issue_ticket");
    ok(accounts.logout(&login.secret).await, "logout");
    refused("after logout", err(accounts.host_session(&cookie.secret, host).await, "logout"));
    refused("a ticket after logout", err(accounts.redeem_ticket(&pending.secret, host).await, "p"));
    refused("an ended session's ticket", err(accounts.issue_ticket(&caller, host).await, "ended"));
    let gone = crate::Authenticated {
        user: user.clone(),
        via: crate::Via::Session { id: Uuid::now_v7() },
    };
    refused("no such session", err(accounts.issue_ticket(&gone, host).await, "gone"));
    ok(accounts.delete_user(&user).await, "cleanup");
}
