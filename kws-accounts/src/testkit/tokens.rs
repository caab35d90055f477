//! Tokens of a store.

use chrono::Duration;
use uuid::Uuid;

use super::{err, now, ok, token, unique_user};
use crate::{AccountStore, Error, Secret, TokenScope, TokenScopes};

/// Tokens read back as inserted (every scope set, expiry or none, names of up to 64
/// characters of any script), found by digest only while their row exists; an id or digest
/// already there is refused; `tokens_of` answers the user's tokens only, newest first.
pub async fn tokens_by_digest_and_newest_first(store: &dyn AccountStore) {
    let (alice, bob) = (unique_user("tok-a"), unique_user("tok-b"));
    let t = now();
    let mut old = token(&alice, "laptop", t - Duration::days(2));
    old.scopes = ok(TokenScopes::of(&[TokenScope::Read]), "scopes");
    old.expires_at = Some(t + Duration::days(30));
    let mut mid = token(&alice, &"é".repeat(64), t - Duration::days(1));
    mid.scopes = ok(TokenScopes::of(&[TokenScope::Exec]), "scopes");
    let mut new = token(&alice, "ci ☕", t);
    new.scopes = ok(TokenScopes::of(&[TokenScope::Write]), "scopes");
    new.revoked_at = Some(t);
    let theirs = token(&bob, "laptop", t + Duration::seconds(1));
    // Inserted out of order: the order is the store's.
    for tok in [&mid, &theirs, &new, &old] {
        ok(store.insert_token(tok).await, "insert_token");
    }
    for tok in [&old, &mid, &new, &theirs] {
        let found = ok(store.token_by_hash(&tok.hash).await, "token_by_hash");
        assert_eq!(found.as_ref(), Some(tok), "a token reads back as inserted");
    }
    let unknown = Secret::generate(crate::TOKEN_PREFIX).digest();
    assert_eq!(ok(store.token_by_hash(&unknown).await, "token_by_hash"), None);

    let listed = ok(store.tokens_of(&alice).await, "tokens_of");
    assert_eq!(listed, [new.clone(), mid.clone(), old.clone()], "the user's, newest first");
    assert_eq!(ok(store.tokens_of(&bob).await, "tokens_of"), std::slice::from_ref(&theirs));
    let nobody = unique_user("tok-none");
    assert_eq!(ok(store.tokens_of(&nobody).await, "tokens_of"), []);

    let mut same_id = token(&bob, "dup", t);
    same_id.id = old.id;
    err(store.insert_token(&same_id).await, "a second token with old's id");
    assert_eq!(ok(store.token_by_hash(&same_id.hash).await, "token_by_hash"), None);
    let mut same_hash = token(&bob, "dup", t);
    same_hash.hash = old.hash;
    err(store.insert_token(&same_hash).await, "a second token with old's digest");
    let found = ok(store.token_by_hash(&old.hash).await, "token_by_hash");
    assert_eq!(found.as_ref(), Some(&old), "a refused insert leaves the first row");
    assert_eq!(ok(store.tokens_of(&bob).await, "tokens_of"), [theirs]);

    for user in [&alice, &bob] {
        ok(store.delete_user(user).await, "cleanup");
    }
    for tok in [&old, &mid, &new] {
        let found = ok(store.token_by_hash(&tok.hash).await, "token_by_hash");
        assert_eq!(found, None, "a token is not found once its row is gone");
    }
}

/// `revoke_token` marks the token and answers it as stored; revoking again keeps the first
/// time; another user's id is `NotFound` exactly like an unknown one, and leaves the token.
pub async fn revoke_keeps_the_first_time(store: &dyn AccountStore) {
    let (alice, bob) = (unique_user("rev-a"), unique_user("rev-b"));
    let t = now();
    let mine = token(&alice, "laptop", t);
    let other = token(&alice, "ci", t);
    for tok in [&mine, &other] {
        ok(store.insert_token(tok).await, "insert_token");
    }

    let foreign = err(store.revoke_token(&bob, mine.id, t).await, "bob revokes alice's token");
    let unknown = err(store.revoke_token(&alice, Uuid::now_v7(), t).await, "unknown token id");
    assert!(matches!(foreign, Error::NotFound { .. }), "{foreign}");
    assert_eq!(
        foreign.to_string(),
        unknown.to_string(),
        "another user's id is like an unknown one"
    );
    let found = ok(store.token_by_hash(&mine.hash).await, "token_by_hash");
    assert_eq!(found.as_ref(), Some(&mine), "another user's revoke leaves the token");

    let first = t + Duration::seconds(5);
    let revoked = ok(store.revoke_token(&alice, mine.id, first).await, "revoke_token");
    assert_eq!(revoked.revoked_at, Some(first));
    assert_eq!(revoked.id, mine.id);
    let found = ok(store.token_by_hash(&mine.hash).await, "token_by_hash");
    assert_eq!(found.as_ref(), Some(&revoked), "revoke_token answers the row as stored");
    let later = first + Duration::seconds(5);
    let again = ok(store.revoke_token(&alice, mine.id, later).await, "revoke_token again");
    assert_eq!(again.revoked_at, Some(first), "revoking again keeps the first time");
    let earlier = first - Duration::seconds(5);
    let again = ok(store.revoke_token(&alice, mine.id, earlier).await, "revoke_token again");
    assert_eq!(again.revoked_at, Some(first), "even when the second time is earlier");
    let found = ok(store.token_by_hash(&other.hash).await, "token_by_hash");
    assert_eq!(found.as_ref(), Some(&other), "revoking one token leaves the others");

    ok(store.delete_user(&alice).await, "cleanup");
}
