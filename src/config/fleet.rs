//! `[fleet]` in tmux-delegate.toml: what a runner offers and trusts, and
//! how a submitter signs.

use super::expand_path;
use crate::error::{config_error, Failure};
use crate::mqtt::sign::EventKey;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The pool a runner serves and `submit` targets when none is named.
pub const DEFAULT_POOL: &str = "default";

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Pool name (`runner --pool`, `submit --pool`).
    pub pool: Option<String>,
    /// This runner's name (`runner --name`); default: the host name.
    pub name: Option<String>,
    /// How many jobs this runner runs at once (`runner --max-parallel`).
    pub max_parallel: Option<u32>,
    /// The directory job workdirs are resolved in and may not leave
    /// (default: the runner's working directory).
    pub root: Option<PathBuf>,
    /// Hex HMAC keys of the submitters this runner trusts.
    pub submitter_keys: Option<Vec<String>>,
    /// The file holding this host's submitter key (hex), for `submit`.
    pub submitter_key_file: Option<PathBuf>,
    /// How long a job may stay on offer unclaimed before the pool's leader
    /// offers it again (its offer was lost); default 30 s.
    #[serde(
        default,
        deserialize_with = "crate::model::policy::humantime_serde_compat::option::deserialize"
    )]
    pub offer_timeout: Option<std::time::Duration>,
    /// The MQTT keepalive of the runner's connections: a broker declares a
    /// silent (frozen, cut off) runner gone after 1.5 times this; default
    /// 10 s, whole seconds from 5 s (rumqttc's least) to 65535 s.
    #[serde(
        default,
        deserialize_with = "crate::model::policy::humantime_serde_compat::option::deserialize"
    )]
    pub keepalive: Option<std::time::Duration>,
    /// How long a runner whose presence went offline (its Last Will) may
    /// take to come back before the pool offers its jobs again; default
    /// 12 s, longer than the default keepalive, so a broker restart or a
    /// short cut re-offers nothing.
    #[serde(
        default,
        deserialize_with = "crate::model::policy::humantime_serde_compat::option::deserialize"
    )]
    pub failover_after: Option<std::time::Duration>,
}

impl FleetFile {
    /// Paths made absolute against the file's directory; names and keys checked.
    pub fn absolutized(
        mut self,
        base: &Path,
        home: Option<&Path>,
        in_file: &dyn Fn(&str, String) -> Failure,
    ) -> Result<FleetFile, Failure> {
        self.root = self.root.map(|p| expand_path(&p, base, home));
        self.submitter_key_file = self.submitter_key_file.map(|p| expand_path(&p, base, home));
        if let Some(pool) = &self.pool {
            check_name(pool).map_err(|e| in_file("fleet.pool", e))?;
        }
        if let Some(name) = &self.name {
            check_name(name).map_err(|e| in_file("fleet.name", e))?;
        }
        if self.offer_timeout.is_some_and(|t| t.is_zero()) {
            return Err(in_file(
                "fleet.offer_timeout",
                "must be above zero (e.g. \"30s\")".into(),
            ));
        }
        if self.failover_after.is_some_and(|t| t.is_zero()) {
            return Err(in_file(
                "fleet.failover_after",
                "must be above zero (e.g. \"45s\")".into(),
            ));
        }
        if let Some(keepalive) = self.keepalive {
            check_keepalive(keepalive).map_err(|e| in_file("fleet.keepalive", e))?;
        }
        if self.max_parallel == Some(0) {
            return Err(in_file("fleet.max_parallel", "must be at least 1".into()));
        }
        for key in self.submitter_keys.iter().flatten() {
            if EventKey::from_hex(key).is_none() {
                return Err(in_file(
                    "fleet.submitter_keys",
                    "each key must be hex (e.g. `openssl rand -hex 32`)".into(),
                ));
            }
        }
        Ok(self)
    }

    /// Each key from the first (highest) layer that sets it.
    pub fn merged<'a>(layers: impl Iterator<Item = &'a FleetFile> + Clone) -> FleetFile {
        macro_rules! first {
            ($field:ident) => {
                layers.clone().find_map(|l| l.$field.clone())
            };
        }
        FleetFile {
            pool: first!(pool),
            name: first!(name),
            max_parallel: first!(max_parallel),
            root: first!(root),
            submitter_keys: first!(submitter_keys),
            submitter_key_file: first!(submitter_key_file),
            offer_timeout: first!(offer_timeout),
            keepalive: first!(keepalive),
            failover_after: first!(failover_after),
        }
    }

    /// The trusted submitter keys (validated when the file was loaded).
    pub fn trusted_keys(&self) -> Vec<EventKey> {
        self.submitter_keys
            .iter()
            .flatten()
            .filter_map(|k| EventKey::from_hex(k))
            .collect()
    }

    /// This host's submitter key, when one is configured.
    pub fn submitter_key(&self) -> Result<Option<EventKey>, Failure> {
        let Some(path) = &self.submitter_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!(
                "cannot read the submitter key {}: {e}",
                path.display()
            ))
            .help("fix `fleet.submitter_key_file` in tmux-delegate.toml")
        })?;
        EventKey::from_hex(&text).map(Some).ok_or_else(|| {
            config_error(format!("{} does not hold a hex key", path.display()))
                .help("write one with `openssl rand -hex 32 > FILE` and list it in the runners' `fleet.submitter_keys`")
        })
    }
}

/// MQTT carries the keepalive in whole seconds (u16), and rumqttc panics
/// on one under 5 s.
fn check_keepalive(keepalive: std::time::Duration) -> Result<(), String> {
    let secs = keepalive.as_secs();
    if keepalive.subsec_nanos() != 0 || !(5..=65535).contains(&secs) {
        return Err("must be whole seconds from 5s to 65535s (e.g. \"30s\")".into());
    }
    Ok(())
}

/// Pool and runner names become topic levels: `[A-Za-z0-9_-]{1,64}`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1-64 letters, digits, `-` or `_`"
        ))
    }
}
