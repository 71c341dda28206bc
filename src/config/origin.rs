//! Where one configuration value came from — a flag, an environment
//! variable, a file and line, a job record, or the built-in default — so an
//! error about the value can say where to fix it (cargo's habit).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The origin of one resolved value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--workdir`.
    Flag(&'static str),
    /// An environment variable, e.g. `MQTT_PORT`.
    Env(String),
    /// A key in a TOML file, with the line it is on when known.
    File {
        key: String,
        path: PathBuf,
        line: Option<usize>,
    },
    /// A job record's `broker` block.
    Record {
        key: String,
        job: String,
        /// The block is the embedded broker of the `run` that made the job.
        embedded: bool,
    },
    /// Nothing set it: the built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "`{flag}`"),
            Origin::Env(name) => f.write_str(name),
            Origin::File {
                key,
                path,
                line: Some(line),
            } => write!(f, "`{key}` at {}:{line}", path.display()),
            Origin::File {
                key,
                path,
                line: None,
            } => write!(f, "`{key}` in {}", path.display()),
            Origin::Record { key, job, .. } => write!(f, "`{key}` in the record of job {job}"),
            Origin::Default => f.write_str("the built-in default"),
        }
    }
}

/// The 1-based line of every key in a TOML text, by dotted path
/// (`defaults.timeouts.idle`; array-of-tables entries are numbered:
/// `jobs.0.workdir`). Empty when the text does not parse (the parser's own
/// error is reported elsewhere).
pub fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    if let Ok(document) = toml_edit::ImDocument::parse(text) {
        collect(text, "", document.as_table(), &mut lines);
    }
    lines
}

fn collect(
    text: &str,
    prefix: &str,
    table: &dyn toml_edit::TableLike,
    lines: &mut BTreeMap<String, usize>,
) {
    for (name, item) in table.iter() {
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        let span = table
            .get_key_value(name)
            .and_then(|(key, _)| key.span())
            .or_else(|| item.span());
        if let Some(span) = span {
            lines.insert(path.clone(), line_of(text, span.start));
        }
        if let Some(inner) = item.as_table_like() {
            collect(text, &path, inner, lines);
        } else if let Some(array) = item.as_array_of_tables() {
            for (index, entry) in array.iter().enumerate() {
                collect(text, &format!("{path}.{index}"), entry, lines);
            }
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Where the keys of one file are: names a key as an [`Origin`].
#[derive(Debug, Clone, Default)]
pub struct KeyLines {
    pub path: PathBuf,
    lines: BTreeMap<String, usize>,
}

impl KeyLines {
    pub fn of(path: &Path, text: &str) -> KeyLines {
        KeyLines {
            path: path.to_path_buf(),
            lines: key_lines(text),
        }
    }

    /// `key` (dotted, as written in the file) as an origin.
    pub fn origin(&self, key: &str) -> Origin {
        Origin::File {
            key: key.to_owned(),
            path: self.path.clone(),
            line: self.lines.get(key).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_tables_dotted_headers_and_job_lists() {
        let text = "[broker]\nhost = \"h\"\n\n[defaults.timeouts]\nidle = \"0s\"\n\
                    [[jobs]]\nprompt = \"a\"\n[[jobs]]\nworkdir = \"w\"\n\
                    [broker.worker]\nport = 1\ninline = { a = 1 }\n";
        let lines = key_lines(text);
        assert_eq!(lines.get("broker.host"), Some(&2));
        assert_eq!(lines.get("defaults.timeouts.idle"), Some(&5));
        assert_eq!(lines.get("jobs.1.workdir"), Some(&9));
        assert_eq!(lines.get("broker.worker.port"), Some(&11));
        assert_eq!(lines.get("broker.worker.inline.a"), Some(&12));
    }

    #[test]
    fn origins_read_as_a_place_to_fix() {
        let lines = KeyLines::of(Path::new("/p/t.toml"), "[broker]\n\nport = 1\n");
        assert_eq!(
            lines.origin("broker.port").to_string(),
            "`broker.port` at /p/t.toml:3"
        );
        assert_eq!(
            lines.origin("broker.host").to_string(),
            "`broker.host` in /p/t.toml"
        );
        assert_eq!(Origin::Env("MQTT_PORT".into()).to_string(), "MQTT_PORT");
        assert_eq!(Origin::Flag("--workdir").to_string(), "`--workdir`");
    }
}
