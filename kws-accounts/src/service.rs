//! [`Accounts`]: the service a front end asks who a caller is.

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, SubsecRound as _, Utc};
use kws_core::DnsLabel;
use uuid::Uuid;

use crate::{
    AccountStore, Error, GrantKind, GrantRecord, MemoryAccountStore, Secret, SessionRecord,
    TokenRecord, TokenScopes, normalize_host, password, throttle::Throttle, token,
};

/// The prefix of every API token, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "kws_";

/// The prefix of every host ticket.
pub const TICKET_PREFIX: &str = "kwst_";

/// Limits of accounts.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How long a dashboard session lasts.
    pub session_ttl: Duration,
    /// Failed logins of one account within `failure_window` before its logins are refused.
    pub failures_per_account: u32,
    /// Failed logins from one address within `failure_window` before its logins are refused.
    pub failures_per_address: u32,
    /// The window failed logins are counted in.
    pub failure_window: Duration,
    /// How long a host ticket can be traded for a cookie.
    pub ticket_ttl: Duration,
}

impl Default for AccountSettings {
    /// Sessions of 12 hours; 5 failures per account and 20 per address in 5 minutes; tickets
    /// of 60 seconds.
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            failures_per_account: 5,
            failures_per_address: 20,
            failure_window: Duration::from_secs(300),
            ticket_ttl: Duration::from_secs(60),
        }
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A dashboard session (every scope).
    Session {
        /// The session's id.
        id: Uuid,
    },
    /// An API token.
    Token {
        /// The token's id.
        id: Uuid,
        /// What it may do.
        scopes: TokenScopes,
    },
}

impl Via {
    /// What a caller proved this way may do: a token's scopes, or every scope for a session.
    pub fn scopes(&self) -> TokenScopes {
        match self {
            Via::Session { .. } => TokenScopes::all(),
            Via::Token { scopes, .. } => *scopes,
        }
    }

    /// `session` or `token`.
    pub fn name(&self) -> &'static str {
        match self {
            Via::Session { .. } => "session",
            Via::Token { .. } => "token",
        }
    }
}

/// A caller whose credentials were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user.
    pub user: DnsLabel,
    /// How.
    pub via: Via,
}

impl Authenticated {
    /// What the caller may do: a token's scopes, or every scope for a session.
    pub fn scopes(&self) -> TokenScopes {
        self.via.scopes()
    }
}

/// A session just begun: its row and the cookie value, which exists only here.
#[derive(Debug)]
pub struct NewSession {
    /// The row.
    pub record: SessionRecord,
    /// The cookie's value.
    pub secret: Secret,
}

/// A token just made: its row and the token, shown once and never again.
#[derive(Debug)]
pub struct NewToken {
    /// The row.
    pub record: TokenRecord,
    /// The token.
    pub secret: Secret,
}

/// A grant just made: its row and its secret (the ticket, or the cookie's value), which
/// exists only here.
#[derive(Debug)]
pub struct NewGrant {
    /// The row.
    pub record: GrantRecord,
    /// The ticket or the cookie's value.
    pub secret: Secret,
}

/// Passwords, sessions and tokens over one [`AccountStore`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    settings: AccountSettings,
    throttle: Arc<Throttle>,
}

impl Accounts {
    /// Accounts on `store` with `settings`.
    pub fn new(store: Arc<dyn AccountStore>, settings: AccountSettings) -> Self {
        let throttle = Arc::new(Throttle::new(&settings));
        Self { store, settings, throttle }
    }

    /// Accounts in memory, with the default settings.
    pub fn memory() -> Self {
        Self::new(Arc::new(MemoryAccountStore::default()), AccountSettings::default())
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Sets `user`'s password (12 to 1,024 characters, hashed with argon2id) and ends every
    /// session of the user.
    pub async fn set_password(&self, user: &DnsLabel, password: &Secret) -> Result<(), Error> {
        let password = password.clone();
        let phc = blocking(move || password::hash(&password)).await??;
        self.store.set_password(user, &phc).await
    }

    /// Checks `password` for `user` and begins a new session (a login never reuses one, so a
    /// cookie planted before it is worth nothing after). Every failure is the same
    /// `Unauthenticated`, in about the same time whether the user exists or not; after too
    /// many failures for the account or from `from`, `Throttled` without checking.
    pub async fn login(
        &self,
        user: &str,
        password: &Secret,
        from: IpAddr,
    ) -> Result<NewSession, Error> {
        let name = DnsLabel::parse(user).ok();
        // Failures count per account by the name a login resolves to (`Alice` and `alice` are
        // one account); names that are no account's share one count, and are not kept.
        let key = name.as_ref().map_or("", DnsLabel::as_str).to_owned();
        self.throttle.check(&key, from).map_err(|retry_after| Error::Throttled { retry_after })?;
        let phc = match &name {
            Some(name) => self.store.password(name).await?,
            None => None,
        };
        let (password, checked) = (password.clone(), phc.clone());
        let ok = blocking(move || password::verify(checked.as_deref(), &password)).await?;
        let Some(name) = name.filter(|_| ok) else {
            self.throttle.failed(&key, from);
            return Err(Error::Unauthenticated("wrong user name or password"));
        };
        self.throttle.succeeded(&key);
        let secret = Secret::generate("");
        let now = now();
        let ttl = chrono::Duration::from_std(self.settings.session_ttl)
            .unwrap_or(chrono::Duration::hours(12));
        let record = SessionRecord {
            id: Uuid::now_v7(),
            user: name,
            hash: secret.digest(),
            created_at: now,
            expires_at: now.checked_add_signed(ttl).unwrap_or(now + chrono::Duration::hours(12)),
        };
        self.store.insert_session(&record).await?;
        // The password changed (or the user went) while it was checked: that change may have
        // removed the user's sessions before this one was inserted; this one must not outlive it.
        if self.store.password(&record.user).await? != phc {
            self.logout(&secret).await?;
            return Err(Error::Unauthenticated("wrong user name or password"));
        }
        Ok(NewSession { record, secret })
    }

    /// Ends the session whose cookie is `cookie`; ending one that is gone is not an error.
    pub async fn logout(&self, cookie: &Secret) -> Result<(), Error> {
        match self.store.session_by_hash(&cookie.digest()).await? {
            Some(s) => match self.store.delete_session(&s.user, s.id).await {
                Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            None => Ok(()),
        }
    }

    /// The caller a session cookie names; `Unauthenticated` when it is unknown or expired.
    pub async fn session(&self, cookie: &Secret) -> Result<Authenticated, Error> {
        let Some(s) = self.store.session_by_hash(&cookie.digest()).await? else {
            return Err(Error::Unauthenticated("no such session"));
        };
        if s.expires_at <= Utc::now() {
            return Err(Error::Unauthenticated("the session expired"));
        }
        Ok(Authenticated { user: s.user, via: Via::Session { id: s.id } })
    }

    /// The caller an API token names; `Unauthenticated` when it is unknown, expired or
    /// revoked.
    pub async fn token(&self, token: &Secret) -> Result<Authenticated, Error> {
        if !token.expose().starts_with(TOKEN_PREFIX) {
            return Err(Error::Unauthenticated("not a kws token"));
        }
        let Some(t) = self.store.token_by_hash(&token.digest()).await? else {
            return Err(Error::Unauthenticated("no such token"));
        };
        if t.revoked_at.is_some() {
            return Err(Error::Unauthenticated("the token was revoked"));
        }
        if t.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(Error::Unauthenticated("the token expired"));
        }
        Ok(Authenticated { user: t.user, via: Via::Token { id: t.id, scopes: t.scopes } })
    }

    /// Makes a token for `user` named `name` (1 to 64 printable characters) with `scopes`,
    /// ending after `ttl` when given. The token is in the answer only.
    pub async fn create_token(
        &self,
        user: &DnsLabel,
        name: &str,
        scopes: TokenScopes,
        ttl: Option<Duration>,
    ) -> Result<NewToken, Error> {
        token::check_name(name)?;
        let now = now();
        let expires_at = match ttl {
            None => None,
            Some(ttl) => Some(
                chrono::Duration::from_std(ttl)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or_else(|| Error::Invalid {
                        field: "ttl",
                        reason: format!("{ttl:?} is too long"),
                    })?,
            ),
        };
        let secret = Secret::generate(TOKEN_PREFIX);
        let record = TokenRecord {
            id: Uuid::now_v7(),
            user: user.clone(),
            name: name.to_owned(),
            hash: secret.digest(),
            scopes,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        self.store.insert_token(&record).await?;
        Ok(NewToken { record, secret })
    }

    /// Issues a ticket for `host` (a port is dropped): good for `ticket_ttl`, once, and only
    /// while the caller's session lasts. Only a dashboard session issues tickets (a token is
    /// `Unauthenticated`).
    pub async fn issue_ticket(
        &self,
        caller: &Authenticated,
        host: &str,
    ) -> Result<NewGrant, Error> {
        let Via::Session { id } = caller.via else {
            return Err(Error::Unauthenticated("a ticket needs a dashboard session"));
        };
        let host = normalize_host(host)?;
        let ttl = self.settings.ticket_ttl;
        let secret = Secret::generate(TICKET_PREFIX);
        let record = GrantRecord {
            hash: secret.digest(),
            kind: GrantKind::Ticket,
            session: id,
            user: caller.user.clone(),
            host,
            expires_at: later(now(), ttl),
        };
        match self.store.insert_grant(&record).await {
            Err(Error::NotFound { .. }) => Err(Error::Unauthenticated("no such session")),
            done => done.map(|()| NewGrant { record, secret }),
        }
    }

    /// Trades `ticket` for a cookie grant of the host it was issued for, which `host` (the
    /// request's `Host`, a port dropped) must be. The ticket is used up by the first call,
    /// whatever its outcome: a second one, an expired ticket, a ticket of another host or a
    /// session that ended are all `Unauthenticated`. The cookie lasts as long as the session.
    pub async fn redeem_ticket(&self, ticket: &Secret, host: &str) -> Result<NewGrant, Error> {
        let host = normalize_host(host)?;
        if !ticket.expose().starts_with(TICKET_PREFIX) {
            return Err(Error::Unauthenticated("not a kws ticket"));
        }
        let Some(t) = self.store.take_ticket(&ticket.digest()).await? else {
            return Err(Error::Unauthenticated("no such ticket (it was used, or never issued)"));
        };
        let now = now();
        if t.expires_at <= now {
            return Err(Error::Unauthenticated("the ticket expired"));
        }
        if t.host != host {
            return Err(Error::Unauthenticated("the ticket is for another host"));
        }
        let secret = Secret::generate("");
        let record = GrantRecord {
            hash: secret.digest(),
            kind: GrantKind::Cookie,
            expires_at: later(now, self.settings.session_ttl),
            ..t
        };
        match self.store.insert_grant(&record).await {
            Err(Error::NotFound { .. }) => Err(Error::Unauthenticated("the session ended")),
            done => done.map(|()| NewGrant { record, secret }),
        }
    }

    /// The cookie grant `cookie` names on `host` (a port dropped); `Unauthenticated` when it is
    /// unknown, of another host, expired, or its session ended.
    pub async fn host_session(&self, cookie: &Secret, host: &str) -> Result<GrantRecord, Error> {
        let host = normalize_host(host)?;
        match self.store.cookie_grant(&cookie.digest(), Utc::now()).await? {
            Some(g) if g.host == host => Ok(g),
            Some(_) => Err(Error::Unauthenticated("the cookie is for another host")),
            None => Err(Error::Unauthenticated("no such cookie, or its session ended")),
        }
    }

    /// The user's tokens, newest first.
    pub async fn tokens(&self, user: &DnsLabel) -> Result<Vec<TokenRecord>, Error> {
        self.store.tokens_of(user).await
    }

    /// Revokes the user's token `id`; another user's token is `NotFound`.
    pub async fn revoke_token(&self, user: &DnsLabel, id: Uuid) -> Result<TokenRecord, Error> {
        self.store.revoke_token(user, id, now()).await
    }

    /// Removes the user's password, sessions and tokens.
    pub async fn delete_user(&self, user: &DnsLabel) -> Result<(), Error> {
        self.store.delete_user(user).await
    }

    /// Removes the sessions and tokens that have ended; answers how many.
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        self.store.purge_expired(Utc::now()).await
    }
}

/// `at` plus `ttl`, or plus 12 hours when `ttl` does not fit.
fn later(at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(at + chrono::Duration::hours(12))
}

/// Now, in whole microseconds: what PostgreSQL keeps, so a record the service answers equals
/// the one a store reads back.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Runs CPU-heavy work (argon2) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend { backend: "argon2", source: Box::new(e) })
}
