//! [`Accounts`] end to end: API tokens.

use std::time::Duration;

use super::{err, ok, unique_user};
use crate::{Accounts, Authenticated, Error, Secret, TOKEN_PREFIX, TokenScope, TokenScopes, Via};

/// A token made is shown once (`kws_` and 43 characters), stored as answered and works with
/// its scopes; the same text without the prefix, or any unknown token, is `Unauthenticated`;
/// `tokens` lists newest first; another user's revoke is `NotFound` like an unknown id and
/// leaves the token working; after `revoke_token` (idempotent, keeping the first time) and
/// after its `ttl` a token is `Unauthenticated`; `delete_user` ends every token of the user.
pub async fn tokens_end_to_end(accounts: &Accounts) {
    let (user, other) = (unique_user("svc-tok"), unique_user("svc-tok-b"));
    let write = ok(TokenScopes::of(&[TokenScope::Write]), "scopes");
    let made = ok(accounts.create_token(&user, "laptop", write, None).await, "create_token");
    assert!(made.secret.expose().starts_with(TOKEN_PREFIX), "the token has the kws_ prefix");
    assert_eq!(made.secret.expose().len(), TOKEN_PREFIX.len() + 43);
    let r = &made.record;
    assert_eq!((&r.user, r.name.as_str(), r.scopes), (&user, "laptop", write));
    assert_eq!((r.hash, r.expires_at, r.revoked_at), (made.secret.digest(), None, None));
    let stored = ok(accounts.store().token_by_hash(&r.hash).await, "token_by_hash");
    assert_eq!(stored.as_ref(), Some(r), "the token is stored as answered");
    let who = ok(accounts.token(&made.secret).await, "token");
    let via = Via::Token { id: r.id, scopes: write };
    assert_eq!(who, Authenticated { user: user.clone(), via });
    assert!(who.scopes().has(TokenScope::Read) && !who.scopes().has(TokenScope::Exec));

    let bare = Secret::new(&made.secret.expose()[TOKEN_PREFIX.len()..]);
    let capital = Secret::new(format!("KWS_{}", bare.expose()));
    let unknown = Secret::generate(TOKEN_PREFIX);
    for (token, what) in [(&bare, "no prefix"), (&capital, "KWS_"), (&unknown, "unknown")] {
        let e = err(accounts.token(token).await, what);
        assert!(matches!(e, Error::Unauthenticated(_)), "{what}: {e}");
    }

    let newer = ok(accounts.create_token(&user, "ci", TokenScopes::all(), None).await, "second");
    let ids: Vec<_> = ok(accounts.tokens(&user).await, "tokens").iter().map(|t| t.id).collect();
    assert_eq!(ids, [newer.record.id, r.id], "newest first");

    let foreign = err(accounts.revoke_token(&other, r.id).await, "another user's revoke");
    let missing = err(accounts.revoke_token(&user, uuid::Uuid::now_v7()).await, "unknown id");
    assert!(matches!(foreign, Error::NotFound { .. }), "{foreign}");
    assert_eq!(foreign.to_string(), missing.to_string(), "like an unknown id");
    ok(accounts.token(&made.secret).await, "a token another user tried to revoke");

    let revoked = ok(accounts.revoke_token(&user, r.id).await, "revoke_token");
    assert!(revoked.revoked_at.is_some(), "revoke_token answers the revoked row");
    let e = err(accounts.token(&made.secret).await, "a revoked token");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    let again = ok(accounts.revoke_token(&user, r.id).await, "revoke_token again");
    assert_eq!(again.revoked_at, revoked.revoked_at, "revoking again keeps the first time");
    ok(accounts.token(&newer.secret).await, "revoking one token leaves the others");

    let ttl = Some(Duration::from_secs(1));
    let brief = ok(accounts.create_token(&user, "brief", write, ttl).await, "create_token");
    let b = &brief.record;
    assert_eq!(b.expires_at, Some(b.created_at + chrono::Duration::seconds(1)));
    ok(accounts.token(&brief.secret).await, "a token before its end");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = err(accounts.token(&brief.secret).await, "a token after its end");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");

    ok(accounts.delete_user(&user).await, "delete_user");
    let e = err(accounts.token(&newer.secret).await, "a token of a deleted user");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    assert_eq!(ok(accounts.tokens(&user).await, "tokens"), []);
}
