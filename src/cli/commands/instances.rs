//! `kws instances …`: list, launch, start, stop, restart, remove, and logs.

use serde_json::{Map, Value, json};

use super::Context;
use crate::cli::{
    args::{Act, CreateInstance, Instances, Logs},
    client::CliError,
    output,
};

/// How long `start`, `stop` and `restart` wait for the new state, in seconds.
const WAIT_SECS: u64 = 30;

/// Runs `command`.
pub(crate) async fn run(ctx: &Context, command: Instances) -> Result<(), CliError> {
    match command {
        Instances::Ls => {
            let items = ctx.client.list(&ctx.path("instances")?).await?;
            let columns = [("NAME", "/name"), ("STATE", "/status/state"), ("VERSION", "/version")];
            ctx.print_list(&items, &columns)
        }
        Instances::Create(args) => create(ctx, args).await,
        Instances::Start(act) => action(ctx, act, "start", "running").await,
        Instances::Stop(act) => action(ctx, act, "stop", "exited").await,
        Instances::Restart(act) => action(ctx, act, "restart", "running").await,
        Instances::Rm(named) => {
            ctx.client.delete(&ctx.object_path("instances", &named.name)?).await?;
            ctx.print(&Value::Null, &format!("removed instance {}", named.name))
        }
        Instances::Logs(args) => logs(ctx, args).await,
    }
}

async fn create(ctx: &Context, args: CreateInstance) -> Result<(), CliError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    if let Some(image) = args.image {
        body.insert("image".into(), json!(image));
    }
    if let Some(cpu) = args.cpu_millis {
        body.insert("cpu_millis".into(), json!(cpu));
    }
    if let Some(memory) = args.memory_mb {
        body.insert("memory_mb".into(), json!(memory));
    }
    if !args.ports.is_empty() {
        body.insert("app_ports".into(), json!(args.ports));
    }
    let made = ctx.client.create(&ctx.path("instances")?, &Value::Object(body)).await?;
    let state = output::cell(&made, "/status/state");
    ctx.print(&made, &format!("created instance {} ({state})", args.name))
}

/// `POST …/instances/{name}/{verb}`, then (unless `--no-wait`) the long poll until the
/// instance is `want`.
async fn action(ctx: &Context, act: Act, verb: &str, want: &str) -> Result<(), CliError> {
    let path = ctx.object_path("instances", &act.name)?;
    let mut answer = ctx.client.post(&format!("{path}/{verb}"), &json!({})).await?;
    if !act.no_wait && answer.pointer("/status/state").and_then(Value::as_str) != Some(want) {
        answer = ctx.client.get(&format!("{path}/wait?state={want}&timeout={WAIT_SECS}")).await?;
    }
    let state = output::cell(&answer, "/status/state");
    ctx.print(&answer, &format!("{}: {state}", act.name))
}

/// Prints the instance's `log` events, each line to stdout or stderr as its stream says,
/// until the `end` event.
async fn logs(ctx: &Context, args: Logs) -> Result<(), CliError> {
    let mut path =
        format!("{}/logs?follow={}", ctx.object_path("instances", &args.name)?, args.follow);
    if let Some(tail) = args.tail {
        path.push_str(&format!("&tail={tail}"));
    }
    let mut events = ctx.client.events(&path, None).await?;
    let mut failed = None;
    let mut ended = false;
    while let Some(event) = events.next().await? {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        match event.event.as_str() {
            "log" => {
                let line = format!("{}\n", data["line"].as_str().unwrap_or_default());
                if data["stream"] == "stderr" { output::err(&line)? } else { output::out(&line)? }
            }
            "error" => {
                let message = data["message"].as_str().unwrap_or("the log stream failed");
                failed = Some(CliError::Transport(format!("logs of {}: {message}", args.name)));
            }
            "end" => {
                ended = true;
                break;
            }
            _ => {} // other events are for other clients
        }
    }
    if !ended && failed.is_none() {
        let message = format!("the log stream of {} closed before its end", args.name);
        failed = Some(CliError::Transport(message));
    }
    failed.map_or(Ok(()), Err)
}
