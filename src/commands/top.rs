//! `top`: the full-screen live view (src/ui/top/).

use crate::config::Env;
use crate::error::Exit;
use crate::registry::Registry;

pub async fn run() -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    crate::ui::top::run(&registry, &env).await?;
    Ok(Exit::Success)
}
