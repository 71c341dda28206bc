//! `kill ID`: stop a job gracefully and mark it cancelled. A running
//! supervisor is asked so it stops the window the usual way; without one,
//! this command runs the core's stop sequence itself
//! (`supervisor::stop::cancel`). A fleet job's runner is asked with a
//! signed control.

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::Registry;

pub async fn run(args: &IdArg) -> anyhow::Result<Exit> {
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        return crate::fleet::remote::kill(&config, &args.id).await;
    }
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, _) = registry.find(&args.id)?;
    let killed = crate::supervisor::stop::cancel(&registry, &job).await?;
    eprintln!("{}", killed.note);
    Ok(Exit::Success)
}
