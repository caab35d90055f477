//! `kws apps …`: publish a port of an instance, list, unpublish.

use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    args::{Apps, Publish},
    client::CliError,
    output,
};

/// Runs `command`.
pub(crate) async fn run(ctx: &Context, command: Apps) -> Result<(), CliError> {
    match command {
        Apps::Publish(args) => publish(ctx, args).await,
        Apps::Ls => {
            let items = ctx.client.list(&ctx.path("apps")?).await?;
            let columns = [("NAME", "/name"), ("PORT", "/spec/port"), ("ROUTED", "/status/routed")];
            ctx.print_list(&items, &columns)
        }
        Apps::Rm(named) => {
            ctx.client.delete(&ctx.object_path("apps", &named.name)?).await?;
            ctx.print(&Value::Null, &format!("unpublished app {}", named.name))
        }
    }
}

async fn publish(ctx: &Context, args: Publish) -> Result<(), CliError> {
    let body = json!({"name": args.name, "instance": args.instance, "port": args.port});
    let app = ctx.client.create(&ctx.path("apps")?, &body).await?;
    match url(&app) {
        Some(url) if !ctx.json => output::line(&url),
        _ => output::out(&output::json(&app)),
    }
}

/// The app's public URL, when the answer says it (`url`, or a `hostname`/`host`), at the top
/// or in its `status` or `spec`.
fn url(app: &Value) -> Option<String> {
    ["", "/status", "/spec"].iter().find_map(|at| {
        let part = app.pointer(at)?;
        if let Some(url) = part["url"].as_str() {
            return Some(url.to_owned());
        }
        let host = part["hostname"].as_str().or_else(|| part["host"].as_str())?;
        Some(format!("https://{host}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_found_where_the_answer_has_it() {
        assert_eq!(
            url(&json!({"url": "https://shop.kws.localhost"})).as_deref(),
            Some("https://shop.kws.localhost")
        );
        assert_eq!(
            url(&json!({"status": {"hostname": "shop.d"}})).as_deref(),
            Some("https://shop.d")
        );
        assert_eq!(url(&json!({"name": "shop", "status": {"routed": true}})), None);
    }
}
