//! Leases: renewals, and claims of expired operations (each to exactly one claimer, on the
//! store's clock, fencing out the old holder).

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use futures::future::join_all;
use uuid::Uuid;

use super::{begin, conflict, expired_operation, fresh, make_tenant, new_operation};
use crate::platform::{
    Scope,
    store::{MAX_LEASE, OpState, Operation, PlatformStore, Quotas},
};

/// The ids of `claimed` that are among `ours`.
fn only<'a>(claimed: &'a [Operation], ours: &[Uuid]) -> Vec<&'a Operation> {
    claimed.iter().filter(|op| ours.contains(&op.id)).collect()
}

/// `renew_operations` extends to now + lease the leases of the holder's unfinished operations
/// only (and says how many), without a new version; a renewed operation is not claimed; a
/// lease of `Duration::MAX` is cut to [`MAX_LEASE`], not an error.
pub async fn renewals_extend_only_the_holders_unfinished_leases(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("renew");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let holder = format!("{stem}-holder");
    let stalled = begin(store, expired_operation(&t, &holder)).await;
    let ended = begin(store, expired_operation(&t, &holder)).await;
    let ended = store
        .save_operation(&Operation { state: OpState::Succeeded, ..ended })
        .await
        .expect("save_operation");
    let others = begin(store, expired_operation(&t, &format!("{stem}-other"))).await;

    let renewed = store.renew_operations(&holder, Duration::from_secs(3600)).await;
    assert_eq!(renewed.expect("renew_operations"), 1, "renewed: the holder's unfinished one");
    let now = Utc::now();
    let after = store.get_operation(&op, stalled.id).await.expect("get_operation");
    let until = after.lease_until.expect("a renewed lease");
    assert!(until > now + chrono::Duration::minutes(50), "renewed to now + 1 h: {until}");
    assert_eq!(after.version, stalled.version, "a renewal bumped the version");
    let kept = store.get_operation(&op, ended.id).await.expect("get_operation");
    assert_eq!(kept.lease_until, ended.lease_until, "an ended operation's lease was renewed");
    let kept = store.get_operation(&op, others.id).await.expect("get_operation");
    assert_eq!(kept.lease_until, others.lease_until, "another holder's lease was renewed");

    let claimer = format!("{stem}-claimer");
    let claimed = store.claim_expired(&claimer, Duration::from_secs(3600)).await;
    let claimed = claimed.expect("claim_expired");
    let ids: Vec<_> =
        only(&claimed, &[stalled.id, ended.id, others.id]).iter().map(|o| o.id).collect();
    assert_eq!(ids, [others.id], "claimed: the expired, unfinished, unrenewed one only");

    let renewed = store.renew_operations(&holder, Duration::MAX).await;
    assert_eq!(renewed.expect("renew_operations with Duration::MAX"), 1, "renewed");
    let forever = store.get_operation(&op, stalled.id).await.expect("get_operation");
    let until = forever.lease_until.expect("a renewed lease");
    let longest = Utc::now() + chrono::Duration::from_std(MAX_LEASE).expect("MAX_LEASE");
    let off = (until - longest).num_seconds().abs();
    assert!(off < 3600, "Duration::MAX: a lease of MAX_LEASE, not until {until}");
    let renewed = store.renew_operations(&format!("{stem}-nobody"), Duration::MAX).await;
    assert_eq!(renewed.expect("renew_operations"), 0, "a holder of nothing renews nothing");
}

/// `claim_expired` hands an unfinished operation whose lease passed (on the store's clock) to
/// the claimer with a new lease and a new version, so its old holder's save is `Conflict`
/// while the claimer's applies; a live lease or an ended operation is not claimed.
pub async fn claims_take_over_expired_operations(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("claim");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let old = format!("{stem}-old");
    let new = format!("{stem}-new");
    let stalled = begin(store, expired_operation(&t, &old)).await;
    let live = begin(store, new_operation(&t, &old, None, "live")).await;
    let ended = begin(store, expired_operation(&t, &old)).await;
    store
        .save_operation(&Operation { state: OpState::Compensated, ..ended.clone() })
        .await
        .expect("save_operation");
    // A lease that ends now, on the store's clock: passed a moment later.
    let clocked = begin(store, new_operation(&t, &format!("{stem}-clock"), None, "c")).await;
    store.renew_operations(&format!("{stem}-clock"), Duration::ZERO).await.expect("renew");
    tokio::time::sleep(Duration::from_millis(20)).await;

    let before = Utc::now();
    let claimed = store.claim_expired(&new, Duration::from_secs(600)).await.expect("claim");
    let ours = only(&claimed, &[stalled.id, live.id, ended.id, clocked.id]);
    let ids: Vec<_> = ours.iter().map(|o| o.id).collect();
    let mut want = vec![stalled.id, clocked.id];
    want.sort();
    assert_eq!(ids, want, "claimed: the unfinished operations whose lease passed");
    let taken = ours.iter().find(|o| o.id == stalled.id).map(|o| (*o).clone());
    let taken = taken.expect("the stalled operation was claimed");
    assert_eq!(taken.holder.as_deref(), Some(new.as_str()), "the claimer holds it");
    assert_eq!(taken.version, stalled.version + 1, "a claim bumps the version");
    let until = taken.lease_until.expect("a claimed lease");
    assert!(until > before + chrono::Duration::minutes(9), "the claimer's lease: {until}");
    let stored = store.get_operation(&op, stalled.id).await.expect("get_operation");
    assert_eq!(stored, taken, "claim_expired returns what it stored");

    conflict(store.save_operation(&stalled).await, 1, 2, "the old holder's save after a claim");
    let saved = store.save_operation(&taken).await.expect("the claimer's save");
    assert_eq!(saved.version, 3, "the claimer's save applies");
    let again = store.claim_expired(&format!("{stem}-third"), Duration::from_secs(600)).await;
    let again = again.expect("claim_expired");
    let taken_again = only(&again, &[stalled.id, live.id, ended.id, clocked.id]);
    assert!(
        taken_again.is_empty(),
        "claimed again while the claimer's lease runs: {taken_again:?}"
    );
}

/// Of many concurrent claimers (spread over `stores`), each expired operation goes to exactly
/// one, which the store then names as its holder.
pub async fn expired_operations_go_to_one_claimer(stores: &[&dyn PlatformStore]) {
    let store = |i: usize| stores[i % stores.len()];
    let stem = fresh("claim-race");
    let t = make_tenant(store(0), &stem, Quotas::default()).await;
    let mut ours = Vec::new();
    for i in 0..12 {
        ours.push(begin(store(i), expired_operation(&t, &format!("{stem}-dead"))).await.id);
    }
    let claimers: Vec<String> = (0..8).map(|i| format!("{stem}-c{i}")).collect();
    let claims = claimers
        .iter()
        .enumerate()
        .map(|(i, c)| store(i).claim_expired(c, Duration::from_secs(600)));
    let mut holder_of: HashMap<Uuid, String> = HashMap::new();
    for (claimer, claimed) in claimers.iter().zip(join_all(claims).await) {
        for op in only(&claimed.expect("claim_expired"), &ours) {
            let earlier = holder_of.insert(op.id, claimer.clone());
            assert!(earlier.is_none(), "{} was claimed by {earlier:?} and by {claimer}", op.id);
            assert_eq!(op.version, 2, "a claim bumps the version once");
        }
    }
    assert_eq!(holder_of.len(), ours.len(), "every expired operation was claimed");
    for (id, claimer) in &holder_of {
        let stored = store(1).get_operation(&Scope::Operator, *id).await.expect("get_operation");
        assert_eq!(stored.holder.as_ref(), Some(claimer), "the store names the claimer");
    }
}
