//! Scope: a tenant scope sees only its tenant; only the operator manages tenants and users;
//! users and memberships.

use chrono::Utc;
use serde_json::json;

use super::{
    began_new, fails, fresh, label, make_tenant, new_object, new_operation, not_found, now_micros,
    owner, viewer,
};
use crate::platform::{
    ErrorKind, Role, Scope,
    store::{Claims, Kind, Page, PlatformStore, Quotas, User},
};

fn user(name: &str) -> User {
    User {
        name: label(name),
        display_name: format!("User {name}"),
        operator: false,
        created_at: now_micros(),
    }
}

/// Another tenant's tenant record, objects, operations and members are `NotFound` to a tenant
/// scope, for every read and every write, and the writes change nothing; lists hold only the
/// scope's own. The scope's role does not matter to the store (a viewer writes).
pub async fn a_tenant_scope_sees_only_its_tenant(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("scope");
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let b = make_tenant(store, &format!("{stem}-b"), Quotas::default()).await;
    let mine = viewer(&a);
    let web_a = store.create_object(&mine, new_object(Kind::Instance, &a, "web")).await;
    web_a.expect("a viewer scope creates in its own tenant: roles are not the store's business");
    let web_b =
        store.create_object(&op, new_object(Kind::Instance, &b, "web")).await.expect("create");
    let op_a = began_new(
        store.begin_operation(&mine, new_operation(&a, &stem, None, "h")).await,
        "begin_operation in the scope's own tenant",
    );
    let op_b = began_new(store.begin_operation(&op, new_operation(&b, &stem, None, "h")).await, "");
    let shared = label(&fresh("scope-u"));
    let only_b = label(&fresh("scope-v"));
    for name in [&shared, &only_b] {
        store.create_user(&op, user(name.as_str())).await.expect("create_user");
    }
    store.put_member(&op, &a, &shared, Role::Viewer).await.expect("put_member");
    store.put_member(&op, &b, &shared, Role::Admin).await.expect("put_member");
    store.put_member(&op, &b, &only_b, Role::Member).await.expect("put_member");

    // The other tenant itself.
    not_found(store.get_tenant(&mine, &b).await, "tenant", "get_tenant of another tenant");
    let listed = store.list_tenants(&mine).await.expect("list_tenants");
    assert_eq!(listed.iter().map(|t| &t.id).collect::<Vec<_>>(), [&a], "list_tenants: own only");
    let renamed = store.update_tenant(&mine, &b, 1, "mine now".into(), Quotas::default()).await;
    not_found(renamed, "tenant", "update_tenant of another tenant");
    let b_now = store.get_tenant(&op, &b).await.expect("get_tenant");
    assert_eq!((b_now.version, b_now.display_name.as_str()), (1, &*format!("Tenant {b}")));
    not_found(store.usage(&mine, &b).await, "tenant", "usage of another tenant");

    // Its objects.
    let rule = "get_object of another tenant's object";
    not_found(store.get_object(&mine, Kind::Instance, &b, "web").await, "instance", rule);
    let found = store.find_object(&mine, web_b.meta.id).await;
    not_found(found, "object", "find_object of another tenant's object");
    let listed = store.list_objects(&mine, Kind::Instance, Some(&b), &Page::default()).await;
    not_found(listed, "tenant", "list_objects naming another tenant");
    let listed = store.list_objects(&mine, Kind::Instance, None, &Page::default()).await;
    let tenants: Vec<_> =
        listed.expect("list_objects").into_iter().map(|r| r.meta.tenant).collect();
    assert_eq!(
        tenants,
        std::slice::from_ref(&a),
        "list_objects of a tenant scope: its own objects only"
    );
    let planted = store.create_object(&mine, new_object(Kind::Instance, &b, "planted")).await;
    not_found(planted, "tenant", "create_object in another tenant");
    let spec = store
        .update_spec(
            &mine,
            Kind::Instance,
            &b,
            "web",
            1,
            json!({ "mine": true }),
            Claims::default(),
        )
        .await;
    not_found(spec, "instance", "update_spec of another tenant's object");
    let status =
        store.update_status(&mine, Kind::Instance, &b, "web", json!("seen"), Utc::now()).await;
    not_found(status, "instance", "update_status of another tenant's object");
    let deleted = store.delete_object(&mine, Kind::Instance, &b, "web", None).await;
    not_found(deleted, "instance", "delete_object of another tenant's object");
    let b_web = store.get_object(&op, Kind::Instance, &b, "web").await.expect("get_object");
    assert_eq!(b_web, web_b, "another tenant's object changed through a tenant scope");
    let planted = store.get_object(&op, Kind::Instance, &b, "planted").await;
    not_found(planted, "instance", "a refused create left an object behind");

    // Its operations.
    not_found(store.get_operation(&mine, op_b.id).await, "operation", "get_operation");
    not_found(store.request_cancel(&mine, op_b.id).await, "operation", "request_cancel");
    let b_op = store.get_operation(&op, op_b.id).await.expect("get_operation");
    assert!(!b_op.cancel_requested, "another tenant's operation was cancelled");
    let begun = store.begin_operation(&mine, new_operation(&b, &stem, None, "h")).await;
    not_found(begun, "tenant", "begin_operation in another tenant");
    let listed = store.list_operations(&mine, Some(&b), None, 100).await;
    not_found(listed, "tenant", "list_operations naming another tenant");
    let listed = store.list_operations(&mine, None, None, 100).await.expect("list_operations");
    let ids: Vec<_> = listed.iter().map(|o| o.id).collect();
    assert_eq!(ids, [op_a.id], "list_operations of a tenant scope: its own operations only");

    // Its members, and the users that are only its members.
    not_found(store.members(&mine, &b).await, "tenant", "members of another tenant");
    let put = store.put_member(&mine, &b, &shared, Role::Admin).await;
    not_found(put, "tenant", "put_member in another tenant");
    let removed = store.remove_member(&mine, &b, &only_b).await;
    not_found(removed, "tenant", "remove_member in another tenant");
    let b_members = store.members(&op, &b).await.expect("members");
    assert_eq!(b_members.len(), 2, "another tenant's members changed through a tenant scope");
    let seen = store.memberships(&mine, &shared).await.expect("memberships");
    let tenants: Vec<_> = seen.iter().map(|m| &m.tenant).collect();
    assert_eq!(tenants, [&a], "memberships through a tenant scope: its own tenant only");
    store.get_user(&mine, &shared).await.expect("a tenant scope sees the users of its members");
    not_found(store.get_user(&mine, &only_b).await, "user", "get_user of another tenant's user");
    let listed = store.list_users(&mine).await.expect("list_users");
    assert!(listed.iter().any(|u| u.name == shared), "list_users of a tenant scope: its members");
    assert!(!listed.iter().any(|u| u.name == only_b), "list_users showed another tenant's user");
    let all = store.list_users(&op).await.expect("list_users");
    assert!(all.iter().any(|u| u.name == only_b), "the operator lists every user");
    assert!(all.windows(2).all(|w| w[0].name.as_str() < w[1].name.as_str()), "by name");
}

/// A tenant scope cannot create or delete tenants or users (`Forbidden`, nothing changes);
/// the operator's duplicate tenant or user is `AlreadyExists` and keeps the first.
pub async fn only_the_operator_creates_and_deletes_tenants_and_users(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("operator");
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let admin = Scope::tenant(a.clone(), Role::Admin);
    let c = owner(&format!("{stem}-c"));
    let made = store.create_tenant(&admin, c.clone(), "C".into(), Quotas::default()).await;
    fails(made, ErrorKind::Forbidden, "create_tenant by a tenant scope");
    not_found(store.get_tenant(&op, &c).await, "tenant", "a refused create_tenant left a tenant");
    let deleted = store.delete_tenant(&admin, &a).await;
    fails(deleted, ErrorKind::Forbidden, "delete_tenant by a tenant scope");
    store.get_tenant(&op, &a).await.expect("a refused delete_tenant removed the tenant");

    let name = fresh("operator-u");
    let made = store.create_user(&admin, user(&name)).await;
    fails(made, ErrorKind::Forbidden, "create_user by a tenant scope");
    not_found(
        store.get_user(&op, &label(&name)).await,
        "user",
        "a refused create_user left a user",
    );
    let first = store.create_user(&op, user(&name)).await.expect("create_user");
    let deleted = store.delete_user(&admin, &first.name).await;
    fails(deleted, ErrorKind::Forbidden, "delete_user by a tenant scope");
    assert_eq!(store.get_user(&op, &first.name).await.expect("get_user"), first, "user kept");

    let again = store.create_tenant(&op, a.clone(), "Other".into(), Quotas::default()).await;
    match fails(again, ErrorKind::AlreadyExists, "a second tenant of one id") {
        crate::platform::Error::AlreadyExists { kind: "tenant", .. } => {}
        other => panic!("a second tenant of one id: expected AlreadyExists of a tenant: {other:?}"),
    }
    let kept = store.get_tenant(&op, &a).await.expect("get_tenant");
    assert_eq!(kept.display_name, format!("Tenant {a}"), "a refused duplicate tenant wrote");
    let twin = User { display_name: "Twin".into(), operator: true, ..first.clone() };
    let again = store.create_user(&op, twin).await;
    fails(again, ErrorKind::AlreadyExists, "a second user of one name");
    assert_eq!(store.get_user(&op, &first.name).await.expect("get_user"), first, "user kept");
    store.delete_user(&op, &first.name).await.expect("delete_user");
    not_found(store.delete_user(&op, &first.name).await, "user", "delete_user of no user");
}

/// Users round-trip; `put_member` makes or changes a membership; members are by user name and
/// memberships by tenant; removing a missing membership or naming a missing tenant or user is
/// `NotFound`; deleting a user ends its memberships.
pub async fn users_and_members(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("members");
    let b = make_tenant(store, &format!("{stem}-b"), Quotas::default()).await;
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let names: Vec<String> = ["y", "x", "z"].iter().map(|s| format!("{stem}-{s}")).collect();
    let mut users = Vec::new();
    for name in &names {
        let made = User { operator: name.ends_with('z'), ..user(name) };
        let stored = store.create_user(&op, made.clone()).await.expect("create_user");
        assert_eq!(stored, made, "create_user returns the user as given");
        assert_eq!(store.get_user(&op, &made.name).await.expect("get_user"), made, "round trip");
        users.push(made.name);
    }
    for name in &users {
        store.put_member(&op, &a, name, Role::Viewer).await.expect("put_member");
    }
    let changed = store.put_member(&op, &a, &users[0], Role::Admin).await.expect("put_member");
    assert_eq!((changed.role, &changed.tenant), (Role::Admin, &a), "put_member changes the role");
    let members = store.members(&op, &a).await.expect("members");
    let listed: Vec<_> = members.iter().map(|m| (m.user.as_str(), m.role)).collect();
    let x = format!("{stem}-x");
    let y = format!("{stem}-y");
    let z = format!("{stem}-z");
    let want = [(x.as_str(), Role::Viewer), (y.as_str(), Role::Admin), (z.as_str(), Role::Viewer)];
    assert_eq!(listed, want, "members: one per user, by user name, with the latest role");

    store.put_member(&op, &b, &users[0], Role::Member).await.expect("put_member");
    let tenants: Vec<_> = store
        .memberships(&op, &users[0])
        .await
        .expect("memberships")
        .into_iter()
        .map(|m| m.tenant)
        .collect();
    assert_eq!(tenants, [a.clone(), b.clone()], "memberships: by tenant");

    let nobody = label(&format!("{stem}-nobody"));
    not_found(store.put_member(&op, &a, &nobody, Role::Viewer).await, "user", "member of no user");
    let gone = owner(&format!("{stem}-gone"));
    not_found(store.put_member(&op, &gone, &users[0], Role::Viewer).await, "tenant", "no tenant");
    not_found(store.members(&op, &gone).await, "tenant", "members of no tenant");
    store.remove_member(&op, &a, &users[2]).await.expect("remove_member");
    let again = store.remove_member(&op, &a, &users[2]).await;
    not_found(again, "member", "remove_member of no membership");
    not_found(store.remove_member(&op, &gone, &users[2]).await, "tenant", "remove in no tenant");

    store.delete_user(&op, &users[0]).await.expect("delete_user");
    let left = store.memberships(&op, &users[0]).await.expect("memberships");
    assert!(left.is_empty(), "delete_user left memberships: {left:?}");
    let members = store.members(&op, &a).await.expect("members");
    let listed: Vec<_> = members.iter().map(|m| m.user.as_str()).collect();
    assert_eq!(listed, [x.as_str()], "delete_user left its membership in the tenant");
}
