//! MCP progress notifications for a call whose client asked for them (a
//! `progressToken` in its `_meta`). Progress is the seconds waited so far,
//! out of the call's timeout: it rises with every notification, as the
//! protocol requires, and its message says where the jobs are.

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use std::time::Instant;

pub struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    started: Instant,
}

impl Progress {
    /// The call's progress channel, when its client gave a token.
    pub fn asked(context: &RequestContext<RoleServer>) -> Option<Progress> {
        Some(Progress {
            token: context.meta.get_progress_token()?,
            peer: context.peer.clone(),
            started: Instant::now(),
        })
    }

    /// One notification: `message` after the seconds waited, of `total`.
    pub async fn tell(&self, total_s: f64, message: String) {
        let waited = self.started.elapsed().as_secs_f64();
        let param = ProgressNotificationParam::new(self.token.clone(), waited)
            .with_total(total_s)
            .with_message(message);
        // A client that went away ends the call anyway; nothing to do here.
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!("progress notification not sent: {e}");
        }
    }
}
