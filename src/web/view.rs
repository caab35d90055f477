//! What every page shares: the [`Frame`] around it (who is signed in, the tenant, the
//! navigation, the asset URLs) and rendering a template into a response.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use kws_core::OwnerId;

use super::{assets::asset_url, error::WebError, forms::Viewer};
use crate::{http::ApiError, platform::Scope};

/// One link of the navigation.
#[derive(Debug, Clone)]
pub(crate) struct NavLink {
    pub(crate) href: String,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// The frame of a page.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// The `<title>`.
    pub(crate) title: String,
    /// The signed-in user, if any.
    pub(crate) user: Option<String>,
    /// Whether the user is an operator (the admin link).
    pub(crate) operator: bool,
    /// The tenant the page belongs to (its live stream, its navigation).
    pub(crate) tenant: Option<String>,
    /// The tenants the user may switch to.
    pub(crate) tenants: Vec<String>,
    /// The tenant's sections.
    pub(crate) nav: Vec<NavLink>,
    /// The stylesheet's URL.
    pub(crate) css: String,
    /// The script's URL.
    pub(crate) js: String,
}

/// The sections of a tenant: path under `/t/{tenant}` and label.
const SECTIONS: [(&str, &str); 7] = [
    ("", "Overview"),
    ("/instances", "Instances"),
    ("/devices", "VPN devices"),
    ("/apps", "Apps"),
    ("/databases", "Databases"),
    ("/run", "Code runner"),
    ("/operations", "Operations"),
];

impl Frame {
    /// A frame with no user (sign-in, errors).
    pub(crate) fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            user: None,
            operator: false,
            tenant: None,
            tenants: Vec::new(),
            nav: Vec::new(),
            css: asset_url("app.css"),
            js: asset_url("app.js"),
        }
    }

    /// The frame of `viewer`'s page `title`, outside any tenant (admin).
    pub(crate) fn signed_in(viewer: &Viewer, title: &str) -> Self {
        let caller = &viewer.0;
        let tenants =
            caller.scopes.iter().filter_map(Scope::confined_to).map(ToString::to_string).collect();
        Self {
            user: Some(caller.user.to_string()),
            operator: caller.is_operator(),
            tenants,
            ..Self::bare(title)
        }
    }

    /// The frame of `viewer`'s page `title` in `tenant`, section `section` (its path under
    /// the tenant, `""` for the overview).
    pub(crate) fn tenant(viewer: &Viewer, tenant: &OwnerId, section: &str, title: &str) -> Self {
        let mut frame = Self::signed_in(viewer, title);
        let t = tenant.to_string();
        if !frame.tenants.contains(&t) {
            frame.tenants.push(t.clone());
        }
        frame.nav = SECTIONS
            .iter()
            .map(|(path, label)| NavLink {
                href: format!("/t/{t}{path}"),
                label,
                current: *path == section,
            })
            .collect();
        frame.tenant = Some(t);
        frame
    }
}

/// `template` rendered as a 200 HTML response; a render failure is a 500 page.
pub(crate) fn html(template: &impl Template) -> Result<Response, WebError> {
    let text = template.render().map_err(|e| WebError(ApiError::internal(e)))?;
    Ok(Html(text).into_response())
}

/// Bytes as people read them (`1.5 MiB`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A time as the pages show it (UTC, to the second), or `never`.
pub(crate) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
