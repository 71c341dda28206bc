//! Exit codes and the user-facing error shape: `error:` line, `Caused by:` chain,
//! optional `help:` line. Errors carry their exit code as a typed marker in the
//! anyhow chain so any layer can classify a failure without knowing the caller.

use std::fmt;

/// The process exit codes of SPEC section 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    JobFailed,
    Usage,
    BrokerUnreachable,
    PublishRefused,
    TimedOut,
    Interrupted,
    /// A supervisor stopped before every state it observed was in the
    /// registry (a full or failing disk): 75, EX_TEMPFAIL.
    Unrecorded,
    /// Passed through as is (the window's wrapper exits with its agent's code).
    Raw(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::JobFailed => 1,
            Exit::Usage => 2,
            Exit::BrokerUnreachable => 3,
            Exit::PublishRefused => 4,
            Exit::TimedOut => 124,
            Exit::Interrupted => 130,
            Exit::Unrecorded => 75,
            Exit::Raw(code) => code,
        }
    }
}

/// A classified failure: the message, its exit code and an optional next step.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub help: Option<String>,
    /// A transient failure that trying again may cure (a broker that closed
    /// the connection without a reason).
    pub transient: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            help: None,
            transient: false,
        }
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }
}

/// A configuration or usage error (exit 2).
pub fn config_error(message: impl Into<String>) -> Failure {
    Failure::new(Exit::Usage, message)
}

/// The broker could not be reached or refused us (exit 3).
pub fn broker_error(message: impl Into<String>) -> Failure {
    Failure::new(Exit::BrokerUnreachable, message)
}

/// The exit code an error maps to: the first classified failure in its chain,
/// else 1 (an unexpected runtime failure, e.g. an I/O error on the registry).
pub fn exit_of(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(Exit::JobFailed, |failure| failure.exit)
}

/// Renders an error chain for stderr, cargo style: `error: ...`, then one
/// `Caused by:` block with the causes that add something (a cause whose
/// text is already said above is left out), then `help: ...`.
pub fn render(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}");
    let mut said = error.to_string();
    let mut causes = Vec::new();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || said.contains(&text) {
            continue;
        }
        said.push('\n');
        said.push_str(&text);
        causes.push(text);
    }
    if !causes.is_empty() {
        out.push_str("\n\nCaused by:");
        for cause in causes {
            out.push_str(&format!("\n    {}", cause.replace('\n', "\n    ")));
        }
    }
    if let Some(help) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .and_then(|failure| failure.help.as_deref())
    {
        out.push_str(&format!("\nhelp: {help}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_code_survives_added_context() {
        let error = Err::<(), _>(anyhow::Error::from(
            config_error("bad port").help("use 1-65535"),
        ))
        .context("loading configuration")
        .unwrap_err();
        assert_eq!(exit_of(&error), Exit::Usage);
        let text = render(&error);
        assert!(text.starts_with("error: loading configuration"), "{text}");
        assert!(text.contains("Caused by:\n    bad port"), "{text}");
        assert!(text.ends_with("help: use 1-65535"), "{text}");
    }

    #[test]
    fn causes_already_said_are_not_repeated() {
        let inner = anyhow::Error::from(config_error("not valid JSON").help("move it aside"));
        let error = inner
            .context("reading r.json: not valid JSON")
            .context("loading job j");
        assert_eq!(
            render(&error),
            "error: loading job j\n\nCaused by:\n    reading r.json: not valid JSON\nhelp: move it aside"
        );
        let two = anyhow::Error::from(config_error("c"))
            .context("b")
            .context("a");
        assert_eq!(render(&two), "error: a\n\nCaused by:\n    b\n    c");
    }

    #[test]
    fn unclassified_errors_exit_1() {
        assert_eq!(exit_of(&anyhow::anyhow!("disk full")), Exit::JobFailed);
    }
}
