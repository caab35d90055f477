//! Operations: idempotency keys (also under concurrency), fenced saves, cancel requests.

use chrono::Duration;
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::{
    began_new, begin, conflict, fails, fresh, make_tenant, new_operation, not_found, now_micros,
};
use crate::platform::{
    Error, ErrorKind, Scope,
    store::{Begun, OpState, Operation, PlatformStore, Quotas, Step, StepState},
};

/// A key used again with the same request hash finds the first operation (`Existing`, ended
/// or not); with another hash it is `IdempotencyMismatch` and records nothing; keys are per
/// tenant; operations without a key are always new.
pub async fn idempotency_keys_find_the_first_operation(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("idem");
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let b = make_tenant(store, &format!("{stem}-b"), Quotas::default()).await;
    let first = begin(store, new_operation(&a, &stem, Some("k1"), "h1")).await;
    let again = store.begin_operation(&op, new_operation(&a, "another", Some("k1"), "h1")).await;
    match again {
        Ok(Begun::Existing(found)) => assert_eq!(found, first, "the retry found another record"),
        other => panic!("a retry with the same key and hash: expected Existing, got {other:?}"),
    }
    let other = store.begin_operation(&op, new_operation(&a, &stem, Some("k1"), "h2")).await;
    match fails(other, ErrorKind::IdempotencyMismatch, "the same key for another request") {
        Error::IdempotencyMismatch { key } => assert_eq!(key, "k1", "the error names the key"),
        e => panic!("expected IdempotencyMismatch, got {e:?}"),
    }
    let listed = store.list_operations(&op, Some(&a), None, 100).await.expect("list_operations");
    assert_eq!(listed.len(), 1, "a retry or a mismatch recorded an operation");
    let elsewhere = store.begin_operation(&op, new_operation(&b, &stem, Some("k1"), "h2")).await;
    began_new(elsewhere, "the same key in another tenant");
    let x = begin(store, new_operation(&a, &stem, None, "h1")).await;
    let y = begin(store, new_operation(&a, &stem, None, "h1")).await;
    assert_ne!(x.id, y.id, "two operations without a key are two operations");

    let ended = store
        .save_operation(&Operation {
            state: OpState::Succeeded,
            result: json!({ "ok": 1 }),
            ..first
        })
        .await
        .expect("save_operation");
    let retry = store.begin_operation(&op, new_operation(&a, &stem, Some("k1"), "h1")).await;
    match retry {
        Ok(Begun::Existing(found)) => assert_eq!(found, ended, "the retry of an ended operation"),
        other => panic!("a retry after the operation ended: expected Existing, got {other:?}"),
    }
}

/// The key of a compensated operation (it failed and was undone) starts over: a retry with
/// the same request is a new operation, which the key finds from then on; another request
/// is still `IdempotencyMismatch`; of concurrent retries (spread over `stores`), one starts
/// over and the others find its operation.
pub async fn a_compensated_operations_key_starts_over(stores: &[&dyn PlatformStore]) {
    let op = Scope::Operator;
    let store = |i: usize| stores[i % stores.len()];
    let stem = fresh("idem-over");
    let t = make_tenant(store(0), &stem, Quotas::default()).await;
    let compensate = |o: Operation| Operation { state: OpState::Compensated, ..o };
    let first = begin(store(0), new_operation(&t, &stem, Some("k"), "h")).await;
    store(0).save_operation(&compensate(first.clone())).await.expect("save_operation");
    let mismatch =
        store(1).begin_operation(&op, new_operation(&t, &stem, Some("k"), "other")).await;
    fails(mismatch, ErrorKind::IdempotencyMismatch, "another request with a compensated key");
    let again = began_new(
        store(1).begin_operation(&op, new_operation(&t, &stem, Some("k"), "h")).await,
        "the retry of a compensated operation",
    );
    assert_ne!(again.id, first.id, "the retry is a new operation");
    match store(0).begin_operation(&op, new_operation(&t, &stem, Some("k"), "h")).await {
        Ok(Begun::Existing(found)) => assert_eq!(found.id, again.id, "the key names the retry"),
        other => panic!("the key after a start over: expected Existing, got {other:?}"),
    }

    store(0).save_operation(&compensate(again.clone())).await.expect("save_operation");
    let retries =
        (0..20).map(|i| store(i).begin_operation(&op, new_operation(&t, &stem, Some("k"), "h")));
    let mut new_ids = Vec::new();
    let mut found = Vec::new();
    for result in join_all(retries).await {
        match result {
            Ok(Begun::New(o)) => new_ids.push(o.id),
            Ok(Begun::Existing(o)) => found.push(o.id),
            Err(e) => panic!("20 concurrent retries of a compensated operation: {e}"),
        }
    }
    assert_eq!(new_ids.len(), 1, "20 concurrent retries started over {} times", new_ids.len());
    assert!(found.iter().all(|id| *id == new_ids[0]), "a retry found another operation");
    let listed = store(0).list_operations(&op, Some(&t), None, 100).await.expect("list_operations");
    assert_eq!(listed.len(), 3, "the first, the retry and the one retry of the race");
}

/// Concurrent begins with one key (spread over `stores`) make one operation: one `New`, the
/// rest `Existing` of it; with two request hashes in the race, the loser's hash is
/// `IdempotencyMismatch`.
pub async fn concurrent_begins_make_one_operation(stores: &[&dyn PlatformStore]) {
    let op = Scope::Operator;
    let store = |i: usize| stores[i % stores.len()];
    let stem = fresh("idem-race");
    let t = make_tenant(store(0), &stem, Quotas::default()).await;
    let begins =
        (0..50).map(|i| store(i).begin_operation(&op, new_operation(&t, &stem, Some("one"), "h")));
    let results = join_all(begins).await;
    let mut new_ids = Vec::new();
    let mut existing_ids = Vec::new();
    for result in results {
        match result {
            Ok(Begun::New(op)) => new_ids.push(op.id),
            Ok(Begun::Existing(op)) => existing_ids.push(op.id),
            Err(e) => panic!("50 concurrent begins with one key: {e}"),
        }
    }
    assert_eq!(
        new_ids.len(),
        1,
        "50 concurrent begins with one key made {} operations",
        new_ids.len()
    );
    assert!(existing_ids.iter().all(|id| *id == new_ids[0]), "an Existing of another operation");
    let listed = store(1).list_operations(&op, Some(&t), None, 100).await.expect("list_operations");
    assert_eq!(listed.len(), 1, "50 concurrent begins with one key recorded {}", listed.len());

    let mixed = (0..20).map(|i| {
        let hash = if i % 2 == 0 { "even" } else { "odd" };
        store(i).begin_operation(&op, new_operation(&t, &stem, Some("two"), hash))
    });
    let results = join_all(mixed).await;
    let winner: Vec<Operation> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Begun::New(op)) => Some(op.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(winner.len(), 1, "concurrent begins with one key and two hashes: one new");
    for result in results {
        match result {
            Ok(Begun::New(_)) => {}
            Ok(Begun::Existing(op)) => {
                assert_eq!(op.request_hash, winner[0].request_hash, "Existing for another hash");
            }
            Err(Error::IdempotencyMismatch { .. }) => {}
            Err(e) => panic!("concurrent begins with two hashes: {e}"),
        }
    }
    let listed = store(0).list_operations(&op, Some(&t), None, 100).await.expect("list_operations");
    assert_eq!(listed.len(), 2, "the two keys recorded {} operations", listed.len());
}

/// `save_operation` applies only for the holder at the version it read (else `Conflict`,
/// nothing written; an unknown operation is `NotFound`), bumps the version, and writes only
/// the holder's progress (state, steps, error, result, deadline): the operation's identity,
/// holder and lease stay as stored.
pub async fn saves_are_fenced_by_holder_and_version(store: &dyn PlatformStore) {
    let stem = fresh("fence");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let other = make_tenant(store, &format!("{stem}-other"), Quotas::default()).await;
    let first = begin(store, new_operation(&t, &stem, Some("k"), "h")).await;
    let step = Step { name: "lease".into(), state: StepState::Done, at: now_micros() };
    let progress = Operation { steps: vec![step.clone()], ..first.clone() };
    let v2 = store.save_operation(&progress).await.expect("the holder's save");
    assert_eq!((v2.version, &v2.steps), (2, &vec![step.clone()]), "save_operation");
    assert!(v2.updated_at >= first.updated_at, "updated_at moves with a save");
    conflict(store.save_operation(&progress).await, 1, 2, "a save at a stale version");
    let intruder = Operation { holder: Some("intruder".into()), steps: vec![], ..v2.clone() };
    conflict(store.save_operation(&intruder).await, 2, 2, "a save by another holder");
    let nobody = Operation { holder: None, steps: vec![], ..v2.clone() };
    conflict(store.save_operation(&nobody).await, 2, 2, "a save by no holder");
    let stored = store.get_operation(&Scope::Operator, first.id).await.expect("get_operation");
    assert_eq!(stored, v2, "a refused save wrote");
    let unknown = Operation { id: Uuid::now_v7(), ..v2.clone() };
    not_found(store.save_operation(&unknown).await, "operation", "a save of no operation");

    let deadline = now_micros() + Duration::hours(2);
    let rewrite = Operation {
        tenant: other.clone(),
        kind: "something_else".into(),
        target: "elsewhere".into(),
        idempotency_key: Some("stolen".into()),
        request_hash: "other".into(),
        request: json!({ "rewritten": true }),
        created_at: now_micros() - Duration::days(1),
        lease_until: Some(now_micros() + Duration::days(30)),
        state: OpState::Failed,
        error: Some("it broke: \"quoted\" and é".into()),
        result: json!({ "partial": [1, 2] }),
        deadline,
        ..v2.clone()
    };
    let v3 = store.save_operation(&rewrite).await.expect("the holder's save");
    let progress = (v3.state, &v3.error, &v3.result, v3.deadline, v3.version);
    let want = (OpState::Failed, &rewrite.error, &rewrite.result, deadline, 3);
    assert_eq!(progress, want, "a save writes state, error, result and deadline");
    let identity = (&v3.tenant, &v3.kind, &v3.target, &v3.idempotency_key, &v3.request_hash);
    let kept = (&v2.tenant, &v2.kind, &v2.target, &v2.idempotency_key, &v2.request_hash);
    assert_eq!(identity, kept, "a save rewrote what the operation is");
    let kept = (&v3.request, v3.created_at, v3.lease_until, &v3.holder);
    let want = (&v2.request, v2.created_at, v2.lease_until, &v2.holder);
    assert_eq!(kept, want, "a save rewrote the request, the creation time or the lease");
    let moved = store.list_operations(&Scope::Operator, Some(&other), None, 10).await;
    assert!(moved.expect("list_operations").is_empty(), "a save moved the operation");
    let again =
        store.begin_operation(&Scope::Operator, new_operation(&t, &stem, Some("k"), "h")).await;
    match again {
        Ok(Begun::Existing(found)) => assert_eq!(found.id, first.id, "the key still finds it"),
        other => panic!("after a save, its key must still find the operation: {other:?}"),
    }
}

/// `request_cancel` sets the flag of an unfinished operation without a new version; the
/// holder's next save (from a copy read before) keeps it; an ended operation is returned as
/// it is; another scope's or an unknown operation is `NotFound`.
pub async fn cancel_requests_survive_the_holders_save(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("cancel");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let running = begin(store, new_operation(&t, &stem, None, "h")).await;
    let asked = store.request_cancel(&super::viewer(&t), running.id).await.expect("request_cancel");
    assert!(asked.cancel_requested, "request_cancel sets the flag");
    assert_eq!(asked.version, running.version, "request_cancel bumped the version");
    let stored = store.get_operation(&op, running.id).await.expect("get_operation");
    assert!(stored.cancel_requested, "the flag is stored");
    let saved = store.save_operation(&running).await.expect("the holder's save at its version");
    assert!(saved.cancel_requested, "the holder's save cleared the cancel request");
    assert_eq!(saved.version, running.version + 1, "the save bumps the version");

    let done = begin(store, new_operation(&t, &stem, None, "h")).await;
    let done = store
        .save_operation(&Operation { state: OpState::Succeeded, ..done })
        .await
        .expect("save_operation");
    let after = store.request_cancel(&op, done.id).await.expect("request_cancel of an ended one");
    assert_eq!(after, done, "request_cancel changed an ended operation");
    not_found(store.request_cancel(&op, Uuid::now_v7()).await, "operation", "cancel of nothing");
}
