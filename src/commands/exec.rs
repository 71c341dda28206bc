//! `exec --job ID --attempt N` (internal): the job window's wrapper.

use crate::cli::ExecArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::model::JobId;
use crate::registry::Registry;

pub async fn run(args: ExecArgs) -> anyhow::Result<Exit> {
    let job = JobId::parse(&args.job)?;
    let registry = match args.registry {
        Some(dir) => Registry::at(dir),
        None => Registry::open(&Env::from_process()?)?,
    };
    let result = crate::worker::run(&registry, &job, args.attempt).await;
    if let Err(e) = &result {
        // The pane is the only place a person may look: say it there too.
        eprintln!(
            "[tmux-delegate] the wrapper of job {job} failed:\n{}",
            crate::error::render(e)
        );
    }
    result
}
