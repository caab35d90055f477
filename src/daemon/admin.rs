//! `kwsd admin`: users and tokens, straight on the store (for the first operator, a lost
//! password, a token for a script).

use kws_accounts::{Accounts, Secret, TokenScopes};
use kws_core::DnsLabel;

use super::Admin;
use crate::platform::{Platform, Scope};

/// Runs one admin command, printing its result.
pub(super) async fn run(
    platform: &Platform,
    accounts: &Accounts,
    admin: Admin,
) -> Result<(), String> {
    match admin {
        Admin::CreateUser { name, display_name, operator } => {
            let display = display_name.unwrap_or_else(|| name.clone());
            let password = create_user(platform, accounts, &name, &display, operator).await?;
            println!("user {name} made; one-time password (shown once): {}", password.expose());
        }
        Admin::ResetPassword { name } => {
            let user = user(platform, &name).await?;
            let password = one_time_password();
            accounts.set_password(&user, &password).await.map_err(|e| e.to_string())?;
            println!("new one-time password for {name} (shown once): {}", password.expose());
        }
        Admin::CreateToken { user: name, name: token_name, scopes, expires_in } => {
            let user = user(platform, &name).await?;
            let scopes = TokenScopes::parse(&scopes).map_err(|e| e.to_string())?;
            let ttl = expires_in.map(std::time::Duration::from_secs);
            let made = accounts
                .create_token(&user, &token_name, scopes, ttl)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", made.secret.expose());
        }
    }
    Ok(())
}

/// Makes a user with a fresh one-time password; a refused one leaves no user behind.
pub(super) async fn create_user(
    platform: &Platform,
    accounts: &Accounts,
    name: &str,
    display: &str,
    operator: bool,
) -> Result<Secret, String> {
    let made = platform
        .create_user(&Scope::Operator, name, display, operator)
        .await
        .map_err(|e| e.to_string())?;
    let password = one_time_password();
    if let Err(e) = accounts.set_password(&made.name, &password).await {
        let _ = platform.store().delete_user(&Scope::Operator, &made.name).await;
        return Err(e.to_string());
    }
    Ok(password)
}

async fn user(platform: &Platform, name: &str) -> Result<DnsLabel, String> {
    let name = DnsLabel::parse(name).map_err(|e| format!("invalid user name: {e}"))?;
    platform.store().get_user(&Scope::Operator, &name).await.map_err(|e| e.to_string())?;
    Ok(name)
}

/// 256 random bits: long enough to need no policy, shown once.
fn one_time_password() -> Secret {
    Secret::generate("")
}
