//! `delete_user` of a store.

use chrono::Duration;
use kws_core::DnsLabel;

use super::{now, ok, session, token, unique_user};
use crate::AccountStore;

/// `delete_user` removes the user's password, sessions and tokens, and nothing of another
/// user (not even one whose name starts with the same letters); deleting a user with nothing
/// is not an error.
pub async fn delete_user_removes_that_user_only(store: &dyn AccountStore) {
    let alice = unique_user("del");
    let longer: DnsLabel = ok(format!("{alice}x").parse(), "a longer user name");
    let t = now();
    let mut sessions = Vec::new();
    let mut tokens = Vec::new();
    for user in [&alice, &longer] {
        ok(store.set_password(user, &format!("$phc${user}")).await, "set_password");
        for i in 0..3 {
            let s = session(user, t, Duration::hours(1));
            ok(store.insert_session(&s).await, "insert_session");
            sessions.push(s);
            let tok = token(user, &format!("t{i}"), t + Duration::seconds(i));
            ok(store.insert_token(&tok).await, "insert_token");
            tokens.push(tok);
        }
    }

    ok(store.delete_user(&alice).await, "delete_user");
    assert_eq!(ok(store.password(&alice).await, "password"), None, "the password is gone");
    assert_eq!(ok(store.tokens_of(&alice).await, "tokens_of"), [], "the tokens are gone");
    for s in &sessions {
        let found = ok(store.session_by_hash(&s.hash).await, "session_by_hash");
        let kept = s.user != alice;
        assert_eq!(found.is_some(), kept, "session of {}: kept only for the other user", s.user);
    }
    for tok in &tokens {
        let found = ok(store.token_by_hash(&tok.hash).await, "token_by_hash");
        let kept = tok.user != alice;
        assert_eq!(found.is_some(), kept, "token of {}: kept only for the other user", tok.user);
    }
    let phc = ok(store.password(&longer).await, "password");
    assert_eq!(phc, Some(format!("$phc${longer}")), "the other user's password is kept");
    assert_eq!(ok(store.tokens_of(&longer).await, "tokens_of").len(), 3);

    ok(store.delete_user(&alice).await, "delete_user again");
    ok(store.delete_user(&unique_user("del-none")).await, "delete_user of nobody");
    ok(store.delete_user(&longer).await, "cleanup");
}
