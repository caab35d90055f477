//! The dashboard's static files, compiled into the binary and served under content-hashed
//! names (`/static/app.<hash>.css`): a new build changes the name, so browsers may cache
//! each one for a year and never see a stale file.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest as _, Sha256};

/// One file: its logical name, bytes, type, and hashed name.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
    hashed: String,
}

/// Every file the dashboard serves.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        ("app.css", include_bytes!("../../static/app.css").as_slice(), "text/css; charset=utf-8"),
        (
            "app.js",
            include_bytes!("../../static/app.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
    ]
    .into_iter()
    .map(|(name, bytes, content_type)| Asset {
        name,
        bytes,
        content_type,
        hashed: hashed_name(name, bytes),
    })
    .collect()
});

/// `app.css` -> `app.<first 10 hex digits of its SHA-256>.css`.
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hex}.{ext}"),
        None => format!("{name}.{hex}"),
    }
}

/// The URL of the static file `name` (`app.css`, `app.js`); an unknown name is a bug, and
/// answers a URL that is 404.
pub fn asset_url(name: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or_else(|| format!("/static/{name}"), |a| format!("/static/{}", a.hashed))
}

/// `GET /static/{file}`: the file under its hashed name, cached as immutable; any other name
/// (an old hash included) is 404.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.hashed == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
    ];
    (headers, asset.bytes).into_response()
}
