//! Deleting a tenant: refused while it owns objects other than jobs; takes its members, jobs
//! and idempotency keys; leaves its operations as history.

use super::{
    began_new, begin, fails, fresh, label, make_tenant, new_object, new_operation, not_found,
    now_micros,
};
use crate::platform::{
    Error, ErrorKind, Role, Scope,
    store::{Kind, PlatformStore, Quotas, TenantUsage, User},
};

/// `delete_tenant` is `InUse` (nothing removed) while the tenant owns an instance, app, device
/// or database; then it removes the tenant with its members and jobs (the users stay), keeps
/// its operations, and a tenant made again under the id starts empty, its old idempotency
/// keys forgotten. Deleting no tenant is `NotFound`.
pub async fn deleting_a_tenant_takes_its_members_and_jobs(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("delete");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let user = User {
        name: label(&format!("{stem}-u")),
        display_name: "Member".into(),
        operator: false,
        created_at: now_micros(),
    };
    store.create_user(&op, user.clone()).await.expect("create_user");
    store.put_member(&op, &t, &user.name, Role::Member).await.expect("put_member");
    let mut jobs = Vec::new();
    for i in 0..3 {
        let job = store.create_object(&op, new_object(Kind::Job, &t, &format!("job{i}"))).await;
        jobs.push(job.expect("create a job").meta.id);
    }
    let history = begin(store, new_operation(&t, &stem, Some("key"), "first")).await;
    for kind in [Kind::Instance, Kind::App, Kind::Device, Kind::Database] {
        store.create_object(&op, new_object(kind, &t, "thing")).await.expect("create_object");
        match fails(store.delete_tenant(&op, &t).await, ErrorKind::InUse, "a tenant that owns") {
            Error::InUse { .. } => {}
            other => panic!("delete_tenant of a tenant that owns a {kind:?}: {other:?}"),
        }
        store.get_tenant(&op, &t).await.expect("a refused delete_tenant removed the tenant");
        let members = store.members(&op, &t).await.expect("members");
        assert_eq!(members.len(), 1, "a refused delete_tenant removed members");
        assert_eq!(store.usage(&op, &t).await.expect("usage").jobs, 3, "it removed jobs");
        store.delete_object(&op, kind, &t, "thing", None).await.expect("delete_object");
    }

    store.delete_tenant(&op, &t).await.expect("delete_tenant of a tenant with jobs only");
    not_found(store.get_tenant(&op, &t).await, "tenant", "a deleted tenant");
    for id in &jobs {
        not_found(store.find_object(&op, *id).await, "object", "a deleted tenant's job");
    }
    let left = store.memberships(&op, &user.name).await.expect("memberships");
    assert!(left.is_empty(), "a deleted tenant's memberships stayed: {left:?}");
    store.get_user(&op, &user.name).await.expect("a deleted tenant's member is still a user");
    let kept = store.get_operation(&op, history.id).await.expect("a deleted tenant's operation");
    assert_eq!(kept, history, "a deleted tenant's operation changed");
    let listed = store.list_operations(&op, Some(&t), None, 10).await.expect("list_operations");
    assert_eq!(listed.len(), 1, "a deleted tenant's operations are listed");
    not_found(store.delete_tenant(&op, &t).await, "tenant", "delete_tenant of no tenant");

    let again = make_tenant(store, &stem, Quotas::default()).await;
    let tenant = store.get_tenant(&op, &again).await.expect("get_tenant");
    assert_eq!(tenant.version, 1, "a tenant made again starts at version 1");
    assert!(store.members(&op, &again).await.expect("members").is_empty(), "old members");
    let usage = store.usage(&op, &again).await.expect("usage");
    assert_eq!(usage, TenantUsage::default(), "a tenant made again owns nothing");
    store.create_object(&op, new_object(Kind::Job, &again, "job0")).await.expect("a job name");
    let reused =
        store.begin_operation(&op, new_operation(&again, &stem, Some("key"), "other")).await;
    let fresh_op = began_new(reused, "an old tenant's idempotency key in the tenant made again");
    assert_ne!(fresh_op.id, history.id, "the key found the old tenant's operation");
}
