//! `clean [ID ...] [--finished] [--force]`: removes worktrees of finished
//! jobs, and their branches once merged. Uncommitted changes and unmerged
//! commits are refused (exit 2, listing them) unless `--force`.

use crate::cli::CleanArgs;
use crate::config::Env;
use crate::error::{config_error, Exit};
use crate::model::JobId;
use crate::registry::{now_rfc3339, Record, Registry};
use crate::workspace::remove::{remove, Outcome};

pub fn run(args: &CleanArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let records = chosen(&registry, args)?;
    let mut refused = 0;
    for record in &records {
        let workspace = record.worktree()?;
        match remove(workspace, args.force)? {
            Outcome::Refused(losses) => {
                refused += 1;
                eprintln!(
                    "refused: job {} ({}) would lose:",
                    record.id, workspace.branch
                );
                for line in &losses.uncommitted {
                    eprintln!("  uncommitted  {line}");
                }
                for line in &losses.unmerged {
                    eprintln!("  unmerged     {line}");
                }
            }
            Outcome::Removed { branch_tip, forced } => {
                let id = JobId::parse(&record.id)?;
                registry.update(&id, |r| {
                    if let Some(w) = r.workspace.as_mut() {
                        w.removed = Some(now_rfc3339());
                        w.earlier.clear();
                    }
                })?;
                let branch = match &branch_tip {
                    Some(tip) => format!(
                        "deleted branch {} (was {}; `git branch {} {}` brings it back)",
                        workspace.branch,
                        short(tip),
                        workspace.branch,
                        short(tip)
                    ),
                    None => format!("branch {} was already gone", workspace.branch),
                };
                println!(
                    "cleaned {}: removed {}; {branch}",
                    record.id,
                    workspace.path.display()
                );
                if !forced.is_empty() {
                    eprintln!(
                        "  forced: discarded {} uncommitted change(s), {} unmerged commit(s)",
                        forced.uncommitted.len(),
                        forced.unmerged.len()
                    );
                }
            }
        }
    }
    if refused > 0 {
        eprintln!(
            "help: merge the work first (tmux-delegate merge ID), or discard it with --force"
        );
        return Ok(Exit::Usage);
    }
    if records.is_empty() {
        eprintln!("nothing to clean");
    }
    Ok(Exit::Success)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The finished worktree jobs to clean: the ids named, or with
/// `--finished` every finished job whose worktree is still there.
fn chosen(registry: &Registry, args: &CleanArgs) -> anyhow::Result<Vec<Record>> {
    if args.ids.is_empty() && !args.finished {
        return Err(config_error("name the jobs to clean, or pass --finished")
            .help("tmux-delegate clean --finished   # every finished job's worktree")
            .into());
    }
    let mut records = Vec::new();
    if args.ids.is_empty() {
        let (all, _) = registry.list()?;
        records.extend(all.into_iter().filter(|r| {
            r.state.is_finished() && r.workspace.as_ref().is_some_and(|w| w.removed.is_none())
        }));
        return Ok(records);
    }
    for id in &args.ids {
        let record = registry.load(&JobId::parse(id)?)?;
        if !record.state.is_finished() {
            return Err(config_error(format!(
                "job {id} is still {}: its agent works in that worktree",
                record.state.as_str()
            ))
            .help(format!(
                "wait for it, or stop it first: tmux-delegate kill {id}"
            ))
            .into());
        }
        record.worktree()?;
        records.push(record);
    }
    Ok(records)
}
