//! `kws db …`: create (printing the URL with the password once), list, rotate, drop.

use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    args::{Db, Named},
    client::CliError,
    output,
};

/// Runs `command`.
pub(crate) async fn run(ctx: &Context, command: Db) -> Result<(), CliError> {
    match command {
        Db::Create(named) => {
            let made =
                ctx.client.create(&ctx.path("databases")?, &json!({"name": named.name})).await?;
            print_credentials(ctx, &made, &named)
        }
        Db::Ls => {
            let items = ctx.client.list(&ctx.path("databases")?).await?;
            let columns = [
                ("NAME", "/name"),
                ("DATABASE", "/spec/database"),
                ("HOST", "/spec/host"),
                ("PORT", "/spec/port"),
                ("EXISTS", "/status/exists"),
            ];
            ctx.print_list(&items, &columns)
        }
        Db::RotatePassword(named) => {
            let path = format!("{}/rotate-password", ctx.object_path("databases", &named.name)?);
            let made = ctx.client.post(&path, &json!({})).await?;
            print_credentials(ctx, &made, &named)
        }
        Db::Rm(named) => {
            ctx.client.delete(&ctx.object_path("databases", &named.name)?).await?;
            ctx.print(&Value::Null, &format!("dropped database {}", named.name))
        }
    }
}

/// Prints the connection URL of `made`'s credentials: the only time the password is shown.
fn print_credentials(ctx: &Context, made: &Value, named: &Named) -> Result<(), CliError> {
    if ctx.json {
        return output::out(&output::json(made));
    }
    match made.pointer("/credentials/url").and_then(Value::as_str) {
        Some(url) => {
            output::line(url)?;
            output::err("kws: this is the only time the password is shown: keep it\n")
        }
        None => output::line(&format!(
            "database {}: no password in the answer (it was shown when it was made; \
             `kws db rotate-password {}` makes a new one)",
            named.name, named.name
        )),
    }
}
