//! Order and pages: objects by `(tenant, name)` with `Page::after` cursors, operations newest
//! first with `before` cursors.

use kws_core::OwnerId;

use super::{begin, fresh, make_tenant, new_object, new_operation, not_found, owner, viewer};
use crate::platform::{
    Scope,
    store::{Kind, Page, PlatformStore, Quotas},
};

/// Objects come by `(tenant, name)` in byte order, of the listed kind only; pages of any size
/// joined through `Page::after` give the whole list once; a page's limit is 1 to
/// [`Page::MAX`]; a tenant scope's list over all tenants is its own tenant's; listing a tenant
/// that does not exist is `NotFound`.
pub async fn lists_page_in_tenant_and_name_order(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("pages");
    let mut tenants = Vec::new();
    for suffix in ["c", "a", "b"] {
        tenants.push(make_tenant(store, &format!("{stem}-{suffix}"), Quotas::default()).await);
    }
    let names = ["m-1", "zz", "a", "db", "a0", "m", "a-b", "9"];
    for tenant in &tenants {
        for name in names {
            store
                .create_object(&op, new_object(Kind::Instance, tenant, name))
                .await
                .expect("create");
        }
        store.create_object(&op, new_object(Kind::App, tenant, "app")).await.expect("create");
    }
    let mut sorted_names = names.to_vec();
    sorted_names.sort_unstable();
    let mut want: Vec<(OwnerId, String)> = Vec::new();
    tenants.sort();
    for tenant in &tenants {
        want.extend(sorted_names.iter().map(|n| (tenant.clone(), (*n).to_owned())));
    }
    let a = &tenants[0];
    let of_a: Vec<_> = want.iter().filter(|(t, _)| t == a).cloned().collect();

    let whole = store.list_objects(&op, Kind::Instance, Some(a), &Page::default()).await;
    assert_eq!(keys(&whole.expect("list_objects")), of_a, "one tenant's list, by name");
    for size in [1, 2, 3, 7, 8] {
        let paged = pages(store, &op, Some(a), size, None, &stem).await;
        assert_eq!(paged, of_a, "one tenant's list in pages of {size}");
    }
    let mine = store.list_objects(&viewer(a), Kind::Instance, None, &Page::default()).await;
    assert_eq!(keys(&mine.expect("list_objects")), of_a, "a tenant scope's list of every tenant");
    for size in [1, 5, 24] {
        // Over every tenant, from just before this check's tenants (ids `<stem>-…`).
        let paged = pages(store, &op, None, size, Some(owner(&stem)), &stem).await;
        assert_eq!(paged, want, "every tenant's list in pages of {size}");
    }
    let apps = store.list_objects(&op, Kind::App, Some(a), &Page::default()).await;
    let apps = keys(&apps.expect("list_objects"));
    assert_eq!(apps, [(a.clone(), "app".to_owned())], "a list holds only the listed kind");

    let one = Page { after: None, limit: 0 };
    let listed = store.list_objects(&op, Kind::Instance, Some(a), &one).await.expect("list");
    assert_eq!(listed.len(), 1, "a page of limit 0 holds one object");
    let after_last = Page { after: Some((a.clone(), "zz".to_owned())), limit: 10 };
    let listed = store.list_objects(&op, Kind::Instance, Some(a), &after_last).await;
    assert!(listed.expect("list_objects").is_empty(), "nothing after the last name");
    let after_tenant = Page { after: Some((tenants[2].clone(), String::new())), limit: 10 };
    let listed = store.list_objects(&op, Kind::Instance, Some(a), &after_tenant).await;
    assert!(listed.expect("list_objects").is_empty(), "a tenant's list after a later tenant");
    let gone = owner(&format!("{stem}-gone"));
    let listed = store.list_objects(&op, Kind::Instance, Some(&gone), &Page::default()).await;
    not_found(listed, "tenant", "list_objects of no tenant");
    let listed = store.list_objects(&op, Kind::Instance, Some(&gone), &after_tenant).await;
    not_found(listed, "tenant", "list_objects of no tenant, after a later tenant");
}

/// The keys of `records`.
fn keys(records: &[crate::platform::store::ObjectRecord]) -> Vec<(OwnerId, String)> {
    records.iter().map(|r| (r.meta.tenant.clone(), r.meta.name.to_string())).collect()
}

/// Every instance of `tenant` (of every tenant when `None`, starting after `start`) whose
/// tenant id starts with `stem`, fetched in pages of `size`.
async fn pages(
    store: &dyn PlatformStore,
    scope: &Scope,
    tenant: Option<&OwnerId>,
    size: usize,
    start: Option<OwnerId>,
    stem: &str,
) -> Vec<(OwnerId, String)> {
    let mut page = Page { after: start.map(|t| (t, String::new())), limit: size };
    let mut all = Vec::new();
    loop {
        let batch = store.list_objects(scope, Kind::Instance, tenant, &page).await;
        let batch = keys(&batch.expect("list_objects"));
        assert!(batch.len() <= size, "a page of {size} held {}", batch.len());
        let full = batch.len() == size;
        let ours: Vec<_> =
            batch.into_iter().take_while(|(t, _)| t.as_str().starts_with(stem)).collect();
        let left_ours = ours.len() < size;
        page.after = ours.last().cloned();
        all.extend(ours);
        if !full || left_ours {
            return all;
        }
    }
}

/// Operations come newest first, a tenant's or every tenant's; pages joined through `before`
/// give the whole list once; a tenant scope's list is its own tenant's.
pub async fn operations_list_newest_first(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("oplist");
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let b = make_tenant(store, &format!("{stem}-b"), Quotas::default()).await;
    let mut of_a = Vec::new();
    let mut of_both = Vec::new();
    for i in 0..9 {
        let tenant = if i % 3 == 2 { &b } else { &a };
        let made = begin(store, new_operation(tenant, &stem, None, &format!("h{i}"))).await;
        if tenant == &a {
            of_a.push(made.id);
        }
        of_both.push(made.id);
    }
    of_a.reverse();
    of_both.reverse();
    let listed = store.list_operations(&op, Some(&a), None, 100).await.expect("list_operations");
    let ids: Vec<_> = listed.iter().map(|o| o.id).collect();
    assert_eq!(ids, of_a, "a tenant's operations, newest first");
    let listed = store.list_operations(&viewer(&a), None, None, 100).await;
    let ids: Vec<_> = listed.expect("list_operations").iter().map(|o| o.id).collect();
    assert_eq!(ids, of_a, "a tenant scope's operations");
    for size in [1, 2, 4] {
        let mut before = None;
        let mut paged = Vec::new();
        loop {
            let batch = store.list_operations(&op, Some(&a), before, size).await;
            let batch: Vec<_> = batch.expect("list_operations").iter().map(|o| o.id).collect();
            assert!(batch.len() <= size, "a page of {size} held {}", batch.len());
            before = batch.last().copied();
            let full = batch.len() == size;
            paged.extend(batch);
            if !full {
                break;
            }
        }
        assert_eq!(paged, of_a, "a tenant's operations in pages of {size}");
    }
    let every = store.list_operations(&op, None, None, 1000).await.expect("list_operations");
    let ids: Vec<_> =
        every.iter().filter(|o| o.tenant == a || o.tenant == b).map(|o| o.id).collect();
    assert_eq!(ids, of_both, "every tenant's operations, newest first");
    let one = store.list_operations(&op, Some(&a), None, 0).await.expect("list_operations");
    assert_eq!(one.len(), 1, "a list of limit 0 holds one operation");
}
