//! `CertIssuer`: one ACME account, one wildcard order, DNS-01, stored files, renewal.

use std::{
    fmt::Debug,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use kws_core::Domain;

use crate::{
    CertFiles, ProxyError,
    tls::{CertInfo, ChallengeName, DnsProvider, TlsError, TxtRecord, store},
};

/// Something that serves the certificate files and must reload them once they change.
///
/// # Contract
/// `reload_certificate` makes the server load the files again without dropping the requests
/// in flight (nginx: check the whole configuration, then a graceful reload), and returns once
/// new connections get the new certificate. On error the server keeps serving the previous
/// certificate.
#[async_trait]
pub trait CertReload: Send + Sync + Debug + 'static {
    /// Loads the new certificate; returns once the proxy was told to.
    async fn reload_certificate(&self) -> Result<(), ProxyError>;
}

#[cfg(feature = "nginx")]
#[async_trait]
impl CertReload for crate::nginx::NginxProxy {
    async fn reload_certificate(&self) -> Result<(), ProxyError> {
        self.reload().await
    }
}

#[cfg(feature = "caddy")]
#[async_trait]
impl CertReload for crate::caddy::CaddyProxy {
    async fn reload_certificate(&self) -> Result<(), ProxyError> {
        self.reload_certificate_files().await
    }
}

/// What `CertIssuer` orders and where it keeps things.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The ACME directory, e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// A PEM root to trust for the ACME server's own TLS (pebble's test CA); `None` trusts the
    /// system's roots.
    pub acme_server_root: Option<PathBuf>,
    /// The platform domain: the order is for `*.<domain>` and `<domain>`.
    pub domain: Domain,
    /// Contact URLs of the account, e.g. `mailto:ops@example.org`.
    pub contact: Vec<String>,
    /// Where the account's credentials are kept (JSON, mode 0600).
    pub account_file: PathBuf,
    /// Where the key and chain are written.
    pub files: CertFiles,
    /// Renew when the certificate expires within this long.
    pub renew_within: Duration,
    /// Wait this long after creating the TXT records before asking for validation (DNS
    /// propagation; zero for pebble-challtestsrv).
    pub propagation_delay: Duration,
    /// How long to wait for the order to become ready and for the certificate.
    pub order_timeout: Duration,
}

impl IssuerConfig {
    /// `days` days, as a `renew_within` value.
    pub fn days(days: u64) -> Duration {
        Duration::from_secs(days * 24 * 3600)
    }
}

/// What `renew_if_due` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    /// The stored certificate is not due; nothing changed.
    Fresh(CertInfo),
    /// A new certificate was issued, stored and the proxy reloaded.
    Renewed(CertInfo),
}

/// Obtains and renews the wildcard certificate.
#[derive(Debug, Clone)]
pub struct CertIssuer {
    config: IssuerConfig,
    dns: Arc<dyn DnsProvider>,
    reload: Option<Arc<dyn CertReload>>,
}

impl CertIssuer {
    /// An issuer answering challenges through `dns`; after a new certificate it reloads
    /// `reload`, if any.
    pub fn new(
        config: IssuerConfig,
        dns: Arc<dyn DnsProvider>,
        reload: Option<Arc<dyn CertReload>>,
    ) -> Self {
        Self { config, dns, reload }
    }

    /// The configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// The stored certificate, if any.
    pub fn current(&self) -> Result<Option<CertInfo>, TlsError> {
        store::read(&self.config.files)
    }

    /// Issues if there is no certificate or it expires within `renew_within` of `now`.
    pub async fn renew_if_due(&self, now: SystemTime) -> Result<RenewOutcome, TlsError> {
        if let Some(info) = self.current()? {
            if info.not_after > now + self.config.renew_within {
                return Ok(RenewOutcome::Fresh(info));
            }
        }
        self.issue().await.map(RenewOutcome::Renewed)
    }

    /// Runs `renew_if_due` now and then every `every`, until `shutdown` completes. A failed
    /// attempt is logged and retried at the next tick; the previous certificate keeps serving.
    /// Returns how many certificates were issued.
    pub async fn run(&self, every: Duration, shutdown: impl Future<Output = ()>) -> usize {
        let mut issued = 0;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return issued,
                _ = ticks.tick() => match self.renew_if_due(SystemTime::now()).await {
                    Ok(RenewOutcome::Renewed(info)) => {
                        issued += 1;
                        tracing::info!(serial = %info.serial, "certificate renewed");
                    }
                    Ok(RenewOutcome::Fresh(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
                },
            }
        }
    }

    /// Orders a new certificate now, stores it and reloads the proxy.
    pub async fn issue(&self) -> Result<CertInfo, TlsError> {
        crate::http::install_crypto_provider();
        let account = self.account().await?;
        let (key_pem, chain_pem) = self.order(&account).await?;
        store::store(&self.config.files, &key_pem, &chain_pem)?;
        if let Some(reload) = &self.reload {
            reload.reload_certificate().await.map_err(TlsError::Reload)?;
        }
        store::info_of_pem(&self.config.files.chain, &chain_pem)
    }

    async fn account(&self) -> Result<Account, TlsError> {
        let acme = |step| move |source| TlsError::Acme { step, source };
        let builder = || match &self.config.acme_server_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let path = &self.config.account_file;
        match std::fs::read(path) {
            Ok(json) => {
                let credentials: AccountCredentials =
                    serde_json::from_slice(&json).map_err(|e| TlsError::Io {
                        action: "parse account credentials",
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })?;
                builder()
                    .map_err(acme("client"))?
                    .from_credentials(credentials)
                    .await
                    .map_err(acme("load account"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let contact: Vec<&str> = self.config.contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder()
                    .map_err(acme("client"))?
                    .create(&new, self.config.directory_url.clone(), None)
                    .await
                    .map_err(acme("new account"))?;
                let json = serde_json::to_string(&credentials).map_err(|e| TlsError::Io {
                    action: "serialize account credentials",
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
                        action: "create",
                        path: dir.into(),
                        source,
                    })?;
                }
                store::write_private(path, &json)?;
                Ok(account)
            }
            Err(source) => Err(TlsError::Io { action: "read", path: path.clone(), source }),
        }
    }

    /// Runs the order; the TXT records are removed whatever happens.
    async fn order(&self, account: &Account) -> Result<(String, String), TlsError> {
        let mut records = Vec::new();
        let result = self.run_order(account, &mut records).await;
        for record in &records {
            if let Err(e) = self.dns.remove_txt(record).await {
                tracing::warn!(record = %record.name, error = %e, "TXT record left behind");
            }
        }
        result
    }

    async fn run_order(
        &self,
        account: &Account,
        records: &mut Vec<TxtRecord>,
    ) -> Result<(String, String), TlsError> {
        let acme = |step| move |source| TlsError::Acme { step, source };
        let domain = &self.config.domain;
        let identifiers =
            [Identifier::Dns(format!("*.{domain}")), Identifier::Dns(domain.to_string())];
        let mut order =
            account.new_order(&NewOrder::new(&identifiers)).await.map_err(acme("new order"))?;
        let name = ChallengeName::for_domain(domain);
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(acme("authorization"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(TlsError::Order {
                        domain: domain.to_string(),
                        step: "authorization",
                        status: format!("{other:?}"),
                    });
                }
            }
            let mut challenge =
                authz.challenge(ChallengeType::Dns01).ok_or_else(|| TlsError::Order {
                    domain: domain.to_string(),
                    step: "authorization",
                    status: "without a dns-01 challenge".into(),
                })?;
            let value = challenge.key_authorization().dns_value();
            records.push(self.dns.add_txt(&name, &value).await?);
            if !self.config.propagation_delay.is_zero() {
                tokio::time::sleep(self.config.propagation_delay).await;
            }
            challenge.set_ready().await.map_err(acme("challenge ready"))?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order.poll_ready(&retry).await.map_err(acme("poll order"))?;
        if status != OrderStatus::Ready {
            return Err(TlsError::Order {
                domain: domain.to_string(),
                step: "validation",
                status: format!("{status:?}"),
            });
        }
        let key_pem = order.finalize().await.map_err(acme("finalize"))?;
        let chain_pem = order.poll_certificate(&retry).await.map_err(acme("certificate"))?;
        Ok((key_pem, chain_pem))
    }
}
