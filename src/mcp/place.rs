//! Where a job named by a tool is: in this host's registry, or (with a
//! broker configured and no such job here) in the fleet, decided as the
//! commands decide it (`fleet::remote::job_config`, `Registry::find`:
//! an id, or the name of one job; a bad id is refused as on the CLI).

use crate::config::{Config, Env};
use crate::fleet::remote;
use crate::model::JobId;
use crate::registry::{Record, Registry};

pub enum Place {
    Local {
        registry: Registry,
        job: JobId,
        record: Box<Record>,
    },
    Fleet {
        config: Box<Config>,
        job: JobId,
    },
}

impl Place {
    pub fn of(id: &str) -> anyhow::Result<Place> {
        if let Some(config) = remote::job_config(id)? {
            return Ok(Place::Fleet {
                job: JobId::parse(id)?,
                config: Box::new(config),
            });
        }
        let registry = Registry::open(&Env::from_process()?)?;
        let (job, record) = registry.find(id)?;
        Ok(Place::Local {
            registry,
            job,
            record: Box::new(record),
        })
    }
}

/// The job's `status --json` row as it is now.
pub async fn row(place: &Place) -> anyhow::Result<serde_json::Value> {
    match place {
        Place::Local { registry, job, .. } => {
            Ok(crate::workspace::inspect::status_row(&registry.load(job)?))
        }
        Place::Fleet { config, job } => {
            let rows = remote::rows(config, Some(job.as_str())).await?;
            // One job asked, one row (or the error that it has no state).
            let row = rows.into_iter().next();
            Ok(serde_json::to_value(row)?)
        }
    }
}
