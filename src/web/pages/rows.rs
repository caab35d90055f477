//! The rows of the tenant's lists, one partial template each. A list page renders them in a
//! loop and the live stream renders the same partial for the row that changed, so a row
//! looks the same whether it came with the page or over SSE.

use askama::Template;
use kws_core::OwnerId;
use uuid::Uuid;

use super::super::view::{bytes, when};
use crate::platform::{
    Platform, PlatformSettings, Scope,
    model::{
        AppSpec, CertificateState, DatabaseSpec, Desired, DeviceSpec, InstanceSpec, JobSpec,
        RunState,
    },
    store::{Kind, Object, Operation, PlatformStoreExt as _, StepState},
};

/// An instance's row.
#[derive(Debug, Clone, Template)]
#[template(path = "partials/instance_row.html")]
pub(crate) struct InstanceRow {
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) state: &'static str,
    pub(crate) desired: &'static str,
    pub(crate) resources: String,
    pub(crate) address: String,
    pub(crate) actions: Vec<&'static str>,
}

impl InstanceRow {
    pub(crate) fn of(o: &Object<InstanceSpec>) -> Self {
        let state = if o.meta.deleting.is_some() {
            RunState::Removing.as_str()
        } else {
            o.status.value.as_ref().map_or("unknown", |s| s.state.as_str())
        };
        let desired = match o.spec.desired {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        };
        let running = matches!(o.status.value.as_ref().map(|s| s.state), Some(RunState::Running));
        let mut actions = Vec::new();
        if o.meta.deleting.is_none() {
            actions.push(if running || o.spec.desired == Desired::Running {
                "stop"
            } else {
                "start"
            });
            actions.push("restart");
            actions.push("remove");
        }
        let r = o.spec.resources;
        Self {
            tenant: o.meta.tenant.to_string(),
            name: o.meta.name.to_string(),
            image: o.spec.image.clone().unwrap_or_else(|| "the IDE image".into()),
            state,
            desired,
            resources: format!("{} mCPU, {} MB", r.cpu_millis, r.memory_mb),
            address: o.spec.address.map_or_else(|| "-".into(), |a| a.to_string()),
            actions,
        }
    }
}

/// A VPN device's row.
#[derive(Debug, Clone, Template)]
#[template(path = "partials/device_row.html")]
pub(crate) struct DeviceRow {
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) handshake: String,
    pub(crate) traffic: String,
    pub(crate) expires: String,
}

impl DeviceRow {
    pub(crate) fn of(o: &Object<DeviceSpec>) -> Self {
        let status = o.status.value.as_ref();
        Self {
            tenant: o.meta.tenant.to_string(),
            name: o.meta.name.to_string(),
            address: o.spec.ipv4.map_or_else(|| "-".into(), |a| a.to_string()),
            handshake: when(status.and_then(|s| s.last_handshake)),
            traffic: status.map_or_else(
                || "unknown".into(),
                |s| format!("{} in, {} out", bytes(s.rx_bytes), bytes(s.tx_bytes)),
            ),
            expires: o.spec.expires_at.map_or_else(|| "never".into(), |t| when(Some(t))),
        }
    }
}

/// An app's row.
#[derive(Debug, Clone, Template)]
#[template(path = "partials/app_row.html")]
pub(crate) struct AppRow {
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) target: String,
    pub(crate) routed: &'static str,
    pub(crate) certificate: String,
}

impl AppRow {
    /// The row of `o`, its URL on the platform's domain and scheme (`settings.tls`).
    pub(crate) fn of(o: &Object<AppSpec>, settings: &PlatformSettings) -> Self {
        let status = o.status.value.as_ref();
        let certificate = match status.map(|s| &s.certificate) {
            None => "unknown".into(),
            Some(CertificateState::Valid { not_after }) => {
                format!("valid until {}", when(Some(*not_after)))
            }
            Some(CertificateState::Missing) => "not issued yet".into(),
            Some(CertificateState::Unmanaged) => "managed outside kws".into(),
        };
        Self {
            tenant: o.meta.tenant.to_string(),
            name: o.meta.name.to_string(),
            url: settings.public_url(o.meta.name.as_str(), "/"),
            target: format!("{}:{}", o.spec.instance, o.spec.port),
            routed: match status.map(|s| s.routed) {
                Some(true) => "routed",
                Some(false) => "not routed",
                None => "unknown",
            },
            certificate,
        }
    }
}

/// A database's row.
#[derive(Debug, Clone, Template)]
#[template(path = "partials/database_row.html")]
pub(crate) struct DatabaseRow {
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) database: String,
    pub(crate) role: String,
    pub(crate) server: String,
    pub(crate) exists: &'static str,
}

impl DatabaseRow {
    pub(crate) fn of(o: &Object<DatabaseSpec>) -> Self {
        let s = &o.spec;
        Self {
            tenant: o.meta.tenant.to_string(),
            name: o.meta.name.to_string(),
            database: s.database.clone().unwrap_or_else(|| "-".into()),
            role: s.role.clone().unwrap_or_else(|| "-".into()),
            server: match (&s.host, s.port) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                _ => "-".into(),
            },
            exists: match o.status.value.as_ref().map(|s| s.exists) {
                Some(true) => "present",
                Some(false) => "missing",
                None => "unknown",
            },
        }
    }
}

/// A job's row.
#[derive(Debug, Clone, Template)]
#[template(path = "partials/job_row.html")]
pub(crate) struct JobRow {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) language: String,
    pub(crate) state: String,
    pub(crate) exit_code: String,
    pub(crate) wall: String,
    pub(crate) submitted: String,
    pub(crate) by: String,
}

impl JobRow {
    pub(crate) fn of(o: &Object<JobSpec>) -> Self {
        let status = o.status.value.as_ref();
        Self {
            tenant: o.meta.tenant.to_string(),
            id: o.meta.name.to_string(),
            language: o.spec.language.clone(),
            state: status.map_or_else(|| "queued".into(), |s| s.state.clone()),
            exit_code: status
                .and_then(|s| s.exit_code)
                .map_or_else(|| "-".into(), |c| c.to_string()),
            wall: status
                .and_then(|s| s.wall_ms)
                .map_or_else(|| "-".into(), |ms| format!("{ms} ms")),
            submitted: when(Some(o.meta.created_at)),
            by: o.spec.submitted_by.clone().unwrap_or_else(|| "-".into()),
        }
    }
}

/// One step of an operation, as its row shows it.
#[derive(Debug, Clone)]
pub(crate) struct StepView {
    pub(crate) name: String,
    pub(crate) state: &'static str,
    /// `state` as a CSS class.
    pub(crate) class: &'static str,
}

/// An operation's row: what it did, its steps and which were undone (the compensations).
#[derive(Debug, Clone, Template)]
#[template(path = "partials/operation_row.html")]
pub(crate) struct OperationRow {
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) target: String,
    pub(crate) state: &'static str,
    pub(crate) steps: Vec<StepView>,
    pub(crate) error: Option<String>,
    pub(crate) at: String,
}

impl OperationRow {
    pub(crate) fn of(op: &Operation) -> Self {
        let steps = op
            .steps
            .iter()
            .map(|s| {
                let (state, class) = match s.state {
                    StepState::Started => ("started", "started"),
                    StepState::Done => ("done", "done"),
                    StepState::Undone => ("undone", "undone"),
                    StepState::UndoFailed => ("undo failed", "undo-failed"),
                };
                StepView { name: s.name.clone(), state, class }
            })
            .collect();
        Self {
            id: op.id,
            kind: op.kind.clone(),
            target: op.target.clone(),
            state: op.state.as_str(),
            steps,
            error: op.error.clone(),
            at: when(op.steps.first().map(|s| s.at)),
        }
    }
}

/// A row rendered for the live stream: the element's id, the list it belongs to, its HTML.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Rendered {
    pub(crate) id: String,
    pub(crate) list: &'static str,
    pub(crate) html: String,
}

/// The DOM id of the row of `kind`'s object `name`.
pub(crate) fn row_id(kind: Kind, name: &str) -> String {
    format!("{}-{name}", kind.as_str())
}

/// The row of the tenant's object of `kind` named `name` as it is now, rendered; `Ok(None)`
/// when it is gone (the stream then removes the row).
pub(crate) async fn render_object(
    platform: &Platform,
    scope: &Scope,
    tenant: &OwnerId,
    kind: Kind,
    name: &str,
) -> Result<Option<Rendered>, crate::platform::Error> {
    let store = platform.store();
    let html = match kind {
        Kind::Instance => store
            .find::<InstanceSpec>(scope, tenant, name)
            .await?
            .map(|o| InstanceRow::of(&o).render()),
        Kind::Device => {
            store.find::<DeviceSpec>(scope, tenant, name).await?.map(|o| DeviceRow::of(&o).render())
        }
        Kind::App => store
            .find::<AppSpec>(scope, tenant, name)
            .await?
            .map(|o| AppRow::of(&o, platform.settings()).render()),
        Kind::Database => store
            .find::<DatabaseSpec>(scope, tenant, name)
            .await?
            .map(|o| DatabaseRow::of(&o).render()),
        Kind::Job => {
            store.find::<JobSpec>(scope, tenant, name).await?.map(|o| JobRow::of(&o).render())
        }
    };
    match html {
        None => Ok(None),
        Some(Ok(html)) => Ok(Some(Rendered { id: row_id(kind, name), list: kind.as_str(), html })),
        Some(Err(e)) => Err(crate::platform::Error::backend("templates", e)),
    }
}
