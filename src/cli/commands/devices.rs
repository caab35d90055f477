//! `kws devices …`: add (printing the WireGuard config and its QR code), list, revoke.

use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    args::{AddDevice, Devices},
    client::CliError,
    output,
};

/// Runs `command`.
pub(crate) async fn run(ctx: &Context, command: Devices) -> Result<(), CliError> {
    match command {
        Devices::Add(args) => add(ctx, args).await,
        Devices::Ls => {
            let items = ctx.client.list(&ctx.path("devices")?).await?;
            let columns = [
                ("NAME", "/name"),
                ("ADDRESS", "/spec/ipv4"),
                ("CONNECTED", "/status/on_interface"),
                ("EXPIRES", "/spec/expires_at"),
            ];
            ctx.print_list(&items, &columns)
        }
        Devices::Rm(named) => {
            ctx.client.delete(&ctx.object_path("devices", &named.name)?).await?;
            ctx.print(&Value::Null, &format!("revoked device {}", named.name))
        }
    }
}

/// Adds the device and prints its config (the only copy of its private key), then the
/// config as a QR code for the WireGuard app.
async fn add(ctx: &Context, args: AddDevice) -> Result<(), CliError> {
    let added = ctx.client.create(&ctx.path("devices")?, &json!({"name": args.name})).await?;
    if ctx.json {
        return output::out(&output::json(&added));
    }
    let config = added["config"]
        .as_str()
        .ok_or_else(|| CliError::Transport("the server's answer has no config".into()))?;
    let mut text = config.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    output::out(&text)?;
    if !args.no_qr {
        output::out("\n")?;
        output::out(&output::qr(config)?)?;
    }
    output::err("kws: this is the only copy of the device's private key: keep it\n")
}
