//! The commands: each acts through the API with the stored (or given) token, in the
//! tenant `--tenant` names or the default one.

mod apps;
mod auth;
mod db;
mod devices;
mod instances;
mod run;

use std::process::ExitCode;

use serde_json::Value;

use super::{
    args::{Cli, Command},
    client::{CliError, Client, segment},
    config, output,
};

/// Runs `cli`'s command; answers the exit code of a success.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let Cli { tenant, json, command } = cli;
    if let Command::Login(args) = command {
        return auth::login(args, tenant, json).await.map(|()| ExitCode::SUCCESS);
    }
    if let Command::Logout = command {
        return auth::logout().await.map(|()| ExitCode::SUCCESS);
    }
    let ctx = Context::new(tenant, json)?;
    let done = match command {
        Command::Run(c) => return run::run(&ctx, c).await,
        Command::Whoami => auth::whoami(&ctx).await,
        Command::Instances(c) => instances::run(&ctx, c).await,
        Command::Devices(c) => devices::run(&ctx, c).await,
        Command::Apps(c) => apps::run(&ctx, c).await,
        Command::Db(c) => db::run(&ctx, c).await,
        Command::Login(_) | Command::Logout => unreachable!("handled above"),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// What commands run with: the client, the tenant, the output format.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) client: Client,
    tenant: Option<String>,
    pub(crate) json: bool,
}

impl Context {
    /// The context from the credentials file, the environment and the flags.
    fn new(tenant: Option<String>, json: bool) -> Result<Self, CliError> {
        let path = config::credentials_path()?;
        let file = config::load(&path)?;
        let settings = config::resolve(file.as_ref(), |n| std::env::var(n).ok(), tenant)?;
        let client = Client::new(&settings.server, Some(settings.token))?;
        Ok(Self { client, tenant: settings.tenant, json })
    }

    /// `/api/v1/tenants/{tenant}/{rest}`; an error when no tenant is known.
    pub(crate) fn path(&self, rest: &str) -> Result<String, CliError> {
        let tenant = self.tenant.as_deref().ok_or_else(|| {
            CliError::local("no tenant: pass --tenant TENANT (or set KWS_TENANT)")
        })?;
        Ok(format!("/api/v1/tenants/{}/{rest}", segment(tenant)?))
    }

    /// `/api/v1/tenants/{tenant}/{collection}/{name}`.
    pub(crate) fn object_path(&self, collection: &str, name: &str) -> Result<String, CliError> {
        self.path(&format!("{collection}/{}", segment(name)?))
    }

    /// Prints `items` as JSON with `--json`, else as a table of the cells at `columns`
    /// (header, JSON pointer).
    pub(crate) fn print_list(
        &self,
        items: &[Value],
        columns: &[(&str, &str)],
    ) -> Result<(), CliError> {
        if self.json {
            return output::out(&output::json(&Value::Array(items.to_vec())));
        }
        let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, p)| output::cell(item, p)).collect())
            .collect();
        output::out(&output::table(&headers, &rows))
    }

    /// Prints `answer` as JSON with `--json`, else `message`.
    pub(crate) fn print(&self, answer: &Value, message: &str) -> Result<(), CliError> {
        if self.json { output::out(&output::json(answer)) } else { output::line(message) }
    }
}
