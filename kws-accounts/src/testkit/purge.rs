//! `purge_expired` of a store.

use chrono::{DateTime, Duration, TimeZone as _, Utc};

use super::{grant, ok, session, token, unique_user};
use crate::{AccountStore, GrantKind};

/// `purge_expired(before)` removes the sessions, grants and tokens that expired before `before` and
/// the tokens revoked before it, counts exactly those, and keeps what ends at `before` or
/// later or never. `before` is a day in 2000, so rows of other checks (which end around now)
/// are not counted; rows of a concurrent run of this check would be.
pub async fn purge_counts_and_removes_only_the_ended(store: &dyn AccountStore) {
    let before: DateTime<Utc> = ok(
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().ok_or("no such time"),
        "the purge's time",
    );
    let user = unique_user("purge");
    let micro = Duration::microseconds(1);
    let born = before - Duration::days(30);

    let ended_session = session(&user, born, Duration::days(30) - micro);
    let ended_long_ago = session(&user, born, Duration::days(1));
    let session_at_before = session(&user, born, Duration::days(30));
    let live_session = session(&user, born, Duration::days(60));

    let mut expired = token(&user, "expired", born);
    expired.expires_at = Some(before - micro);
    let mut revoked = token(&user, "revoked", born);
    revoked.revoked_at = Some(before - Duration::seconds(1));
    let mut expired_and_revoked = token(&user, "both", born);
    expired_and_revoked.expires_at = Some(before - Duration::days(2));
    expired_and_revoked.revoked_at = Some(before - Duration::days(3));
    let mut token_at_before = token(&user, "at", born);
    token_at_before.expires_at = Some(before);
    token_at_before.revoked_at = Some(before);
    let mut live_token = token(&user, "live", born);
    live_token.expires_at = Some(before + Duration::days(1));
    let forever = token(&user, "forever", born);

    let ended_sessions = [&ended_session, &ended_long_ago];
    let kept_sessions = [&session_at_before, &live_session];
    for s in ended_sessions.iter().chain(&kept_sessions) {
        ok(store.insert_session(s).await, "insert_session");
    }
    let ended_tokens = [&expired, &revoked, &expired_and_revoked];
    let kept_tokens = [&token_at_before, &live_token, &forever];
    for t in ended_tokens.iter().chain(&kept_tokens) {
        ok(store.insert_token(t).await, "insert_token");
    }

    let with_expiry = |s, at| {
        let mut g = grant(s, GrantKind::Cookie, "purge.kws.test", Duration::zero());
        g.expires_at = at;
        g
    };
    // A grant of an ended session goes with it; a grant ended on its own goes too.
    let ended_grants = [
        with_expiry(&ended_session, before + Duration::days(1)),
        with_expiry(&live_session, before - micro),
    ];
    let kept_grant = with_expiry(&live_session, before);
    for g in ended_grants.iter().chain([&kept_grant]) {
        ok(store.insert_grant(g).await, "insert_grant");
    }

    let purged = ok(store.purge_expired(before).await, "purge_expired");
    assert_eq!(purged, 7, "2 sessions, 2 grants and 3 tokens ended before {before}");
    for g in &ended_grants {
        assert_eq!(ok(store.cookie_grant(&g.hash, born).await, "cookie_grant"), None);
    }
    let found = ok(store.cookie_grant(&kept_grant.hash, born).await, "cookie_grant");
    assert_eq!(found.as_ref(), Some(&kept_grant), "a grant ending at {before} is kept");
    for s in ended_sessions {
        assert_eq!(ok(store.session_by_hash(&s.hash).await, "session_by_hash"), None);
    }
    for s in kept_sessions {
        let found = ok(store.session_by_hash(&s.hash).await, "session_by_hash");
        assert_eq!(found.as_ref(), Some(s), "a session ending at {} is kept", s.expires_at);
    }
    for t in ended_tokens {
        let found = ok(store.token_by_hash(&t.hash).await, "token_by_hash");
        assert_eq!(found, None, "token {} is purged", t.name);
    }
    for t in kept_tokens {
        let found = ok(store.token_by_hash(&t.hash).await, "token_by_hash");
        assert_eq!(found.as_ref(), Some(t), "token {} is kept", t.name);
    }
    assert_eq!(ok(store.purge_expired(before).await, "purge_expired again"), 0);
    ok(store.delete_user(&user).await, "cleanup");
}
