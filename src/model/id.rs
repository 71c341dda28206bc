//! Job ids. An id is validated before it can reach a topic or a path, so
//! that no id can widen a subscription (`+`, `#`) or escape its level (`/`).

use crate::error::{config_error, Failure};

const MAX_ID_LEN: usize = 64;

/// A validated job id: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(String);

impl JobId {
    pub fn parse(raw: &str) -> Result<JobId, Failure> {
        if raw.is_empty() || raw.len() > MAX_ID_LEN {
            return Err(config_error(format!(
                "invalid job id `{}`: it must be 1 to {MAX_ID_LEN} characters long",
                raw.escape_default()
            )));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(config_error(format!(
                "invalid job id `{}`: `{}` is not allowed (ids use only A-Z, a-z, 0-9, `_` and `-`)",
                raw.escape_default(),
                bad.escape_default()
            )));
        }
        Ok(JobId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
