//! The runner's side of `send ID TEXT | --keys KEY...` from other hosts.
//! The runner that holds the job (or ran its last attempt, for a finished
//! job) judges the signed control by its own record with the rules `send`
//! has on one host (`supervisor::send::verdict`), then types into the
//! job's window or starts the follow-up attempt here, where the agent's
//! conversation is, and answers on the job's reply topic either way.

use super::{Fleet, Held, Ready};
use crate::fleet::message::{self, Control, JobStatus, Reply};
use crate::fleet::topics;
use crate::model::event::now_ts;
use crate::model::{FleetState, JobId};
use crate::registry::{FleetOwner, Record};
use crate::supervisor::send::{verdict, Delivery, Input};
use crate::supervisor::{admit, session};
use crate::tmux::job_window;
use std::collections::VecDeque;

/// How many `send` nonces a runner remembers (a duplicate delivery, QoS 1,
/// comes within moments).
const NONCES_KEPT: usize = 256;

/// The `send` nonces answered lately, oldest first.
#[derive(Default)]
pub(super) struct Answered(VecDeque<String>);

impl Answered {
    /// Whether `nonce` is new (then it is remembered).
    fn first_time(&mut self, nonce: &str) -> bool {
        if self.0.iter().any(|n| n == nonce) {
            return false;
        }
        if self.0.len() == NONCES_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(nonce.to_owned());
        true
    }
}

/// A runner's answer, as published.
fn reply(
    job: &JobId,
    nonce: &str,
    runner: &str,
    attempt: u32,
    outcome: Result<String, String>,
) -> Vec<u8> {
    let (accepted, message) = match outcome {
        Ok(done) => (true, done),
        Err(why) => (false, why),
    };
    let reply = Reply {
        job: job.to_string(),
        nonce: nonce.to_owned(),
        runner: runner.to_owned(),
        accepted,
        message,
        attempt,
        ts: now_ts(),
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

impl Fleet {
    /// Whether this runner answers a `send` for the job: it holds it, or
    /// it ran the finished job's last attempt.
    pub(super) fn answers_send(&self, job: &JobId) -> bool {
        self.held.contains_key(job) || self.finished_here(job).is_some()
    }

    /// The last state of a finished job whose last attempt ran here (for a
    /// runner started again, the broker's copy of what it published).
    fn finished_here(&self, job: &JobId) -> Option<&JobStatus> {
        let last = self.states.get(job).or_else(|| self.broker_copy.get(job))?;
        let mine = last.runner.as_deref() == Some(self.me.name.as_str());
        let ran = last.is_terminal() && last.state != FleetState::Refused;
        (mine && ran && !self.held.contains_key(job)).then_some(last)
    }

    /// A `send` control, signed as the runner requires (checked before).
    pub(super) async fn on_send(
        &mut self,
        job: JobId,
        control: Control,
        signed: Result<(), String>,
    ) {
        let Some(nonce) = control.nonce.clone().filter(|n| message::valid_nonce(n)) else {
            return tracing::warn!("job {job}: ignoring a send without a valid nonce");
        };
        if !self.answered.first_time(&nonce) {
            return tracing::info!("job {job}: send {nonce} was answered already");
        }
        let judged = signed
            .and_then(|()| control.check_send(now_ts()))
            .and_then(|()| self.judge_send(&job, &control));
        match judged {
            Err(why) => self.answer(&job, &nonce, 0, Err(why)),
            Ok((record, Delivery::Window)) => self.type_into(job, record, control, nonce),
            Ok((record, Delivery::FollowUp)) => {
                let text = control.text.as_deref().unwrap_or_default();
                let outcome = self.follow_up(&job, &record, text).await;
                let attempt = outcome.as_ref().map_or(record.attempt, |a| *a);
                let said = outcome.map(|attempt| {
                    format!(
                        "it was {}: attempt {attempt} follows up in its conversation",
                        record.state.as_str()
                    )
                });
                self.answer(&job, &nonce, attempt, said);
            }
        }
    }

    fn answer(&self, job: &JobId, nonce: &str, attempt: u32, outcome: Result<String, String>) {
        match &outcome {
            Ok(done) => eprintln!("runner {}: job {job}: {done}", self.me.name),
            Err(why) => eprintln!(
                "runner {}: refused a send to job {job}: {why}",
                self.me.name
            ),
        }
        let payload = reply(job, nonce, &self.me.name, attempt, outcome);
        self.outbox
            .send(topics::reply_topic(&self.prefix, job), payload, false);
    }

    /// Where the control's input goes by `send`'s rules on this runner's
    /// record of the job, or why not.
    fn judge_send(&self, job: &JobId, control: &Control) -> Result<(Record, Delivery), String> {
        let record = self
            .registry
            .load(job)
            .map_err(|e| format!("runner {} has no record of it: {e:#}", self.me.name))?;
        let delivery = verdict(&record, &control.input(), control.now)?;
        let held = self.held.contains_key(job);
        let last_here = self
            .finished_here(job)
            .is_some_and(|s| s.attempt == record.attempt);
        match delivery {
            Delivery::Window if held => Ok((record, delivery)),
            Delivery::FollowUp if last_here => Ok((record, delivery)),
            Delivery::Window => Err(format!(
                "its attempt {} is no longer supervised by runner {}",
                record.attempt, self.me.name
            )),
            Delivery::FollowUp if held => {
                Err("its attempt is ending: send again in a moment".into())
            }
            Delivery::FollowUp => Err(format!(
                "runner {}'s record is of attempt {}, not of the fleet's last attempt",
                self.me.name, record.attempt
            )),
        }
    }

    /// Types into the job's window, off the runner's loop (tmux answers in
    /// milliseconds, but the loop waits on nothing), then answers.
    fn type_into(&self, job: JobId, record: Record, control: Control, nonce: String) {
        let outbox = self.outbox.handle();
        let runner = self.me.name.clone();
        let topic = topics::reply_topic(&self.prefix, &job);
        tokio::spawn(async move {
            let typed = job_window::send(&record, control.input()).await;
            let what = match control.input() {
                Input::Text(_) => "the text",
                Input::Keys(_) => "the keys",
            };
            let outcome = typed
                .map(|()| format!("{what} went to its window (attempt {})", record.attempt))
                .map_err(|e| format!("typing into its window failed: {e:#}"));
            if let Err(why) = &outcome {
                eprintln!("runner {runner}: job {job}: {why}");
            }
            outbox.send(
                topic,
                reply(&job, &nonce, &runner, record.attempt, outcome),
                false,
            );
        });
    }

    /// Starts the finished job's next attempt here, continuing its
    /// conversation with `text` (as `send` on one host does with
    /// `run_again`), claimed like an offer: the pool sees it, the attempt
    /// fences off any older one. The attempt's number, or why not.
    async fn follow_up(&mut self, job: &JobId, record: &Record, text: &str) -> Result<u32, String> {
        let last = self
            .finished_here(job)
            .cloned()
            .ok_or_else(|| format!("its last attempt is not runner {}'s", self.me.name))?;
        let request = last
            .request
            .ok_or_else(|| "its state holds no request to run again".to_owned())?;
        // Signed by a trusted submitter when it was first run; its pool is
        // still this runner's.
        let parsed = self.admit(&request)?;
        let agent = record
            .agent
            .clone()
            .ok_or_else(|| "its record names no agent".to_owned())?;
        let next_turn = crate::supervisor::send::follow_up_turn(record, text);
        let attempt = next_turn.attempt;
        let owner = FleetOwner::this_process(&self.me.name);
        let record = self
            .registry
            .update(job, |r| {
                session::rearm(r, &self.worker, Some(next_turn));
                r.fleet_owner = owner;
            })
            .map_err(|e| format!("cannot update its record: {e:#}"))?;
        let ready = Ready {
            job: job.clone(),
            agent: agent.name.clone(),
            runtime: admit::runtime(job, &record, &agent),
            config: admit::job_config(&record, &agent, self.config.require_signature, attempt),
        };
        self.held.insert(
            job.clone(),
            Held {
                attempt,
                request,
                parsed,
            },
        );
        self.claim(ready).await;
        Ok(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_answered_once_and_the_oldest_are_forgotten() {
        let mut answered = Answered::default();
        assert!(answered.first_time("n0"));
        assert!(!answered.first_time("n0"));
        for i in 1..=NONCES_KEPT {
            assert!(answered.first_time(&format!("n{i}")));
        }
        assert!(answered.first_time("n0"), "n0 was forgotten");
        assert!(!answered.first_time(&format!("n{NONCES_KEPT}")));
    }
}
