//! Sessions and passwords of a store.

use chrono::Duration;
use uuid::Uuid;

use super::{err, now, ok, session, unique_user};
use crate::{AccountStore, Error, Secret};

/// Sessions are found by their digest while their row exists, and only then; an id or a
/// digest already there is refused (the first row unchanged); `delete_session` of another
/// user's id is `NotFound` exactly like an unknown id, and leaves the row.
pub async fn sessions_by_digest_and_by_user(store: &dyn AccountStore) {
    let (alice, bob) = (unique_user("sess-a"), unique_user("sess-b"));
    let t = now();
    let a1 = session(&alice, t, Duration::hours(1));
    let a2 = session(&alice, t, Duration::hours(2));
    let b1 = session(&bob, t, Duration::hours(1));
    for s in [&a1, &a2, &b1] {
        ok(store.insert_session(s).await, "insert_session");
    }
    for s in [&a1, &a2, &b1] {
        let found = ok(store.session_by_hash(&s.hash).await, "session_by_hash");
        assert_eq!(found.as_ref(), Some(s), "a session reads back as inserted");
    }
    let unknown = Secret::generate("").digest();
    assert_eq!(ok(store.session_by_hash(&unknown).await, "session_by_hash"), None);

    let mut same_id = session(&bob, t, Duration::hours(1));
    same_id.id = a1.id;
    err(store.insert_session(&same_id).await, "a second session with a1's id");
    assert_eq!(ok(store.session_by_hash(&same_id.hash).await, "session_by_hash"), None);
    let mut same_hash = session(&bob, t, Duration::hours(1));
    same_hash.hash = a1.hash;
    err(store.insert_session(&same_hash).await, "a second session with a1's digest");
    let found = ok(store.session_by_hash(&a1.hash).await, "session_by_hash");
    assert_eq!(found.as_ref(), Some(&a1), "a refused insert leaves the first row");

    let foreign = err(store.delete_session(&bob, a1.id).await, "bob deletes alice's session");
    let unknown = err(store.delete_session(&bob, Uuid::now_v7()).await, "unknown session id");
    assert!(matches!(foreign, Error::NotFound { .. }), "{foreign}");
    assert_eq!(
        foreign.to_string(),
        unknown.to_string(),
        "another user's id is like an unknown one"
    );
    let found = ok(store.session_by_hash(&a1.hash).await, "session_by_hash");
    assert_eq!(found.as_ref(), Some(&a1), "another user's delete leaves the session");

    ok(store.delete_session(&alice, a1.id).await, "alice deletes her session");
    assert_eq!(ok(store.session_by_hash(&a1.hash).await, "session_by_hash"), None, "a1 is gone");
    let again = err(store.delete_session(&alice, a1.id).await, "a deleted session again");
    assert!(matches!(again, Error::NotFound { .. }), "{again}");
    for s in [&a2, &b1] {
        let found = ok(store.session_by_hash(&s.hash).await, "session_by_hash");
        assert_eq!(found.as_ref(), Some(s), "deleting a1 leaves the others");
    }
    for user in [&alice, &bob] {
        ok(store.delete_user(user).await, "cleanup");
    }
}

/// `set_password` sets or replaces the user's hash and removes that user's sessions, only
/// those; `password` of a user with none is `None`.
pub async fn passwords_replace_and_end_sessions(store: &dyn AccountStore) {
    let (alice, bob) = (unique_user("pw-a"), unique_user("pw-b"));
    assert_eq!(ok(store.password(&alice).await, "password"), None, "a new user has none");
    ok(store.set_password(&bob, "$bob$1").await, "set_password bob");
    let t = now();
    let a1 = session(&alice, t, Duration::hours(1));
    let a2 = session(&alice, t, Duration::hours(1));
    let b1 = session(&bob, t, Duration::hours(1));
    for s in [&a1, &a2, &b1] {
        ok(store.insert_session(s).await, "insert_session");
    }

    ok(store.set_password(&alice, "$alice$1").await, "set_password alice");
    assert_eq!(ok(store.password(&alice).await, "password").as_deref(), Some("$alice$1"));
    for s in [&a1, &a2] {
        let found = ok(store.session_by_hash(&s.hash).await, "session_by_hash");
        assert_eq!(found, None, "set_password removes the user's sessions");
    }
    let found = ok(store.session_by_hash(&b1.hash).await, "session_by_hash");
    assert_eq!(found.as_ref(), Some(&b1), "and no other user's");

    let a3 = session(&alice, t, Duration::hours(1));
    ok(store.insert_session(&a3).await, "insert_session");
    ok(store.set_password(&alice, "$alice$2").await, "set_password alice again");
    assert_eq!(ok(store.password(&alice).await, "password").as_deref(), Some("$alice$2"));
    assert_eq!(ok(store.session_by_hash(&a3.hash).await, "session_by_hash"), None);
    assert_eq!(ok(store.password(&bob).await, "password").as_deref(), Some("$bob$1"));
    for user in [&alice, &bob] {
        ok(store.delete_user(user).await, "cleanup");
    }
}
