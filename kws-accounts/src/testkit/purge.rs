//! `purge_expired` of a store.

use chrono::{DateTime, Duration, TimeZone as _, Utc};

use super::{ok, session, token, unique_user};
use crate::AccountStore;

/// `purge_expired(before)` removes the sessions and tokens that expired before `before` and
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

    let purged = ok(store.purge_expired(before).await, "purge_expired");
    assert_eq!(purged, 5, "2 sessions and 3 tokens ended before {before}");
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
