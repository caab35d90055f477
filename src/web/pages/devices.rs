//! VPN devices: the list, adding one (its QR code and configuration shown once, on the
//! answer to the form: never in a URL, never kept), and revoking.

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use qrcode::{QrCode, render::svg};
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::{Form, Viewer, optional},
        view::{Frame, html},
    },
    back, no_store, rendered_rows,
    rows::DeviceRow,
    see,
};
use crate::{
    http::{ApiError, AppState},
    platform::AddDevice,
};

/// A device just added: what the page shows once.
pub(crate) struct Added {
    name: String,
    config: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    frame: Frame,
    tenant: String,
    rows: Vec<String>,
    added: Option<Added>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    tenant: &kws_core::OwnerId,
    scope: &crate::platform::Scope,
    added: Option<Added>,
) -> Result<Response, WebError> {
    let page = DevicesPage {
        frame: Frame::tenant(viewer, tenant, "/devices", "VPN devices"),
        tenant: tenant.to_string(),
        rows: rendered_rows(state.platform(), scope, tenant, DeviceRow::of).await?,
        added,
    };
    html(&page)
}

/// `GET /t/{tenant}/devices`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    page(&state, &viewer, &tenant, &scope, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewDevice {
    name: String,
    #[serde(default)]
    public_key: String,
}

/// The configuration as an SVG QR code (no XML prolog: it goes inline in the page).
fn qr_svg(config: &str) -> Result<String, WebError> {
    let code = QrCode::new(config.as_bytes()).map_err(|e| WebError(ApiError::internal(e)))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(image.find("<svg").map_or(image.clone(), |at| image[at..].to_owned()))
}

/// `POST /t/{tenant}/devices`: adds it and answers the page with its QR code and
/// configuration, the only time they are shown.
pub(crate) async fn add(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<NewDevice>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let mut request = AddDevice::named(form.name.trim());
    request.public_key = optional(&form.public_key);
    let made = state.platform().add_device(&scope, &tenant, request, None).await?;
    let config = made.config.render();
    let added = Added { name: made.device.meta.name.to_string(), qr_svg: qr_svg(&config)?, config };
    // The answer holds a private key.
    Ok(no_store(page(&state, &viewer, &tenant, &scope, Some(added)).await?))
}

/// `POST /t/{tenant}/devices/{name}/revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    state.platform().revoke_device(&scope, &tenant, &name).await?;
    Ok(see(back(&headers, format!("/t/{tenant}/devices"))))
}
