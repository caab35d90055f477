//! The testkit's suites on [`MemoryAccountStore`], on the store itself and through
//! `Arc<dyn AccountStore>`; each suite twice on one store, as on a database that outlives a run.
//! And a login whose password changes while it is checked.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kws_accounts::{
    AccountSettings, AccountStore, Accounts, Error, GrantRecord, MemoryAccountStore, Secret,
    SecretHash, SessionRecord, TokenRecord, testkit,
};
use kws_core::DnsLabel;
use uuid::Uuid;

#[tokio::test]
async fn the_store_passes_the_conformance_suite() {
    let store = MemoryAccountStore::default();
    testkit::conformance(&store).await;
    testkit::conformance(&store).await;
}

#[tokio::test]
async fn the_store_passes_it_through_a_dyn_account_store() {
    let store: Arc<dyn AccountStore> = Arc::new(MemoryAccountStore::default());
    testkit::conformance(&*store).await;
    testkit::conformance(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_passes_on_the_memory_default() {
    let accounts = Accounts::memory();
    testkit::service_conformance(&accounts).await;
    testkit::service_conformance(&accounts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_passes_over_a_dyn_account_store() {
    let store: Arc<dyn AccountStore> = Arc::new(MemoryAccountStore::default());
    let accounts = Accounts::new(store.clone(), AccountSettings::default());
    testkit::service_conformance(&accounts).await;
    // The service leaves the store as the store suite expects it.
    testkit::conformance(&*store).await;
}

/// A memory store on which the user's password changes (or the user is deleted) just before
/// each session insert, as a change running beside a login can land; it keeps the digest of
/// the last session inserted.
#[derive(Debug, Default)]
struct ChangeBeforeInsert {
    inner: MemoryAccountStore,
    delete: bool,
    last: Mutex<Option<SecretHash>>,
}

#[async_trait::async_trait]
impl AccountStore for ChangeBeforeInsert {
    async fn set_password(&self, user: &DnsLabel, phc: &str) -> Result<(), Error> {
        self.inner.set_password(user, phc).await
    }
    async fn password(&self, user: &DnsLabel) -> Result<Option<String>, Error> {
        self.inner.password(user).await
    }
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), Error> {
        match self.delete {
            true => self.inner.delete_user(&session.user).await?,
            false => self.inner.set_password(&session.user, "$changed$").await?,
        }
        *self.last.lock().expect("last") = Some(session.hash);
        self.inner.insert_session(session).await
    }
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, Error> {
        self.inner.session_by_hash(hash).await
    }
    async fn delete_session(&self, user: &DnsLabel, id: Uuid) -> Result<(), Error> {
        self.inner.delete_session(user, id).await
    }
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), Error> {
        self.inner.insert_grant(grant).await
    }
    async fn take_ticket(&self, hash: &SecretHash) -> Result<Option<GrantRecord>, Error> {
        self.inner.take_ticket(hash).await
    }
    async fn cookie_grant(
        &self,
        hash: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Option<GrantRecord>, Error> {
        self.inner.cookie_grant(hash, at).await
    }
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), Error> {
        self.inner.insert_token(token).await
    }
    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>, Error> {
        self.inner.token_by_hash(hash).await
    }
    async fn tokens_of(&self, user: &DnsLabel) -> Result<Vec<TokenRecord>, Error> {
        self.inner.tokens_of(user).await
    }
    async fn revoke_token(
        &self,
        user: &DnsLabel,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, Error> {
        self.inner.revoke_token(user, id, at).await
    }
    async fn delete_user(&self, user: &DnsLabel) -> Result<(), Error> {
        self.inner.delete_user(user).await
    }
    async fn purge_expired(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.purge_expired(before).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_outlives_its_password_makes_no_session() {
    for delete in [false, true] {
        let store = Arc::new(ChangeBeforeInsert { delete, ..Default::default() });
        let accounts = Accounts::new(store.clone(), AccountSettings::default());
        let user = testkit::unique_user("race");
        let pw = Secret::new("correct horse battery");
        accounts.set_password(&user, &pw).await.expect("set_password");
        let e = accounts.login(user.as_str(), &pw, testkit::unique_address()).await;
        assert!(matches!(e, Err(Error::Unauthenticated(_))), "delete {delete}: {e:?}");
        let hash = store.last.lock().expect("last").expect("a session was inserted");
        let left = store.inner.session_by_hash(&hash).await.expect("session_by_hash");
        assert_eq!(left, None, "delete {delete}: the session is removed again");
    }
}
