//! Where `kws` keeps what `kws login` made: `<config dir>/kws/credentials.json`, mode 0600 in
//! a directory of mode 0700, with `$XDG_CONFIG_HOME` (else `$HOME/.config`) as the config
//! dir. `KWS_SERVER` and `KWS_TOKEN` override the file; `--tenant` (or `KWS_TENANT`) its
//! default tenant.

use std::{
    fs,
    io::{ErrorKind, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::client::CliError;

/// The name of the tokens `kws login` makes.
pub const TOKEN_NAME: &str = "kws-cli";

/// What `kws login` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The server's URL.
    pub server: String,
    /// The API token.
    pub token: String,
    /// The token's id (to revoke it at logout).
    #[serde(default)]
    pub token_id: Option<String>,
    /// The user it signed in as.
    #[serde(default)]
    pub user: Option<String>,
    /// The tenant commands act in by default.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The config dir: `$XDG_CONFIG_HOME` when set to an absolute path, else `$HOME/.config`.
pub fn config_dir_from(xdg: Option<&str>, home: Option<&str>) -> Result<PathBuf, CliError> {
    match (xdg.filter(|x| Path::new(x).is_absolute()), home.filter(|h| !h.is_empty())) {
        (Some(xdg), _) => Ok(PathBuf::from(xdg)),
        (None, Some(home)) => Ok(Path::new(home).join(".config")),
        (None, None) => Err(CliError::local("neither XDG_CONFIG_HOME nor HOME is set")),
    }
}

/// `<config dir>/kws/credentials.json`, from this process's environment.
pub fn credentials_path() -> Result<PathBuf, CliError> {
    let xdg = std::env::var("XDG_CONFIG_HOME").ok();
    let home = std::env::var("HOME").ok();
    Ok(config_dir_from(xdg.as_deref(), home.as_deref())?.join("kws").join("credentials.json"))
}

/// The credentials at `path`; `None` when there is no file.
pub fn load(path: &Path) -> Result<Option<Credentials>, CliError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::local(format!("cannot read {}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CliError::local(format!("{} is not kws credentials ({e}); run `kws login`", path.display()))
    })
}

/// Writes `credentials` to `path`: its directory made with mode 0700, the file written
/// beside it with mode 0600 and renamed over the old one, so no reader sees half a file and
/// the token is never readable by others.
pub fn save(path: &Path, credentials: &Credentials) -> Result<(), CliError> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        CliError::local(format!("cannot {what} {}: {e}", p.display()))
    };
    let dir = path.parent().ok_or_else(|| CliError::local("the credentials path has no dir"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("make", dir, e))?;
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|e| CliError::local(format!("cannot encode the credentials: {e}")))?;
    let temp = path.with_extension("json.tmp");
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(fail("remove", &temp, e)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| fail("create", &temp, e))?;
    // The umask may have taken bits off 0600: make it exactly 0600.
    file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(|e| fail("chmod", &temp, e))?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(|e| fail("write", &temp, e))?;
    file.sync_all().map_err(|e| fail("write", &temp, e))?;
    fs::rename(&temp, path).map_err(|e| fail("write", path, e))
}

/// Removes the file at `path`; answers whether there was one.
pub fn remove(path: &Path) -> Result<bool, CliError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::local(format!("cannot remove {}: {e}", path.display()))),
    }
}

/// What a command runs with, once the environment and the flags are applied to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's URL.
    pub server: String,
    /// The API token.
    pub token: String,
    /// The tenant to act in, if any.
    pub tenant: Option<String>,
}

/// The settings from `file`, with `env` (`KWS_SERVER`, `KWS_TOKEN`; empty counts as unset)
/// over it and `tenant` (the `--tenant` flag or `KWS_TENANT`) over its default tenant.
pub fn resolve(
    file: Option<&Credentials>,
    env: impl Fn(&str) -> Option<String>,
    tenant: Option<String>,
) -> Result<Settings, CliError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let server = env("KWS_SERVER").or_else(|| file.map(|f| f.server.clone()));
    let token = env("KWS_TOKEN").or_else(|| file.map(|f| f.token.clone()));
    let tenant = tenant.filter(|t| !t.is_empty()).or_else(|| file.and_then(|f| f.tenant.clone()));
    match (server, token) {
        (Some(server), Some(token)) => Ok(Settings { server, token, tenant }),
        _ => Err(CliError::local(
            "not signed in: run `kws login --server URL --user NAME` (or set KWS_SERVER and KWS_TOKEN)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            server: "https://a".into(),
            token: "t1".into(),
            token_id: Some("id".into()),
            user: Some("ann".into()),
            tenant: Some("acme".into()),
        }
    }

    #[test]
    fn the_config_dir_prefers_an_absolute_xdg() {
        let dir = |x, h| config_dir_from(x, h).ok();
        assert_eq!(dir(Some("/x"), Some("/h")), Some(PathBuf::from("/x")));
        assert_eq!(dir(Some("rel"), Some("/h")), Some(PathBuf::from("/h/.config")));
        assert_eq!(dir(None, Some("/h")), Some(PathBuf::from("/h/.config")));
        assert_eq!(dir(None, None), None);
    }

    #[test]
    fn the_environment_and_the_flag_win_over_the_file() {
        let no_env = |_: &str| None;
        let s = resolve(Some(&creds()), no_env, None).ok();
        assert_eq!(
            s.map(|s| (s.server, s.token, s.tenant)),
            Some(("https://a".into(), "t1".into(), Some("acme".into())))
        );
        let env = |n: &str| match n {
            "KWS_SERVER" => Some("https://b".to_owned()),
            "KWS_TOKEN" => Some(String::new()),
            _ => None,
        };
        let s = resolve(Some(&creds()), env, Some("other".into())).ok();
        assert_eq!(
            s.map(|s| (s.server, s.token, s.tenant)),
            Some(("https://b".into(), "t1".into(), Some("other".into())))
        );
        assert!(resolve(None, no_env, None).is_err());
        let both = |n: &str| Some(format!("v-{n}"));
        assert_eq!(resolve(None, both, None).map(|s| s.tenant), Ok(None));
    }

    #[test]
    fn saved_credentials_are_private_and_read_back() {
        let home = tempfile::tempdir().expect("tempdir");
        let path = home.path().join("cfg/kws/credentials.json");
        save(&path, &creds()).expect("save");
        let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        assert_eq!(load(&path).expect("load"), Some(creds()));
        save(&path, &Credentials { tenant: None, ..creds() }).expect("save again");
        assert_eq!(load(&path).expect("load").and_then(|c| c.tenant), None);
        assert_eq!(remove(&path).ok(), Some(true));
        assert_eq!(remove(&path).ok(), Some(false));
        assert_eq!(load(&path).ok(), Some(None));
    }
}
