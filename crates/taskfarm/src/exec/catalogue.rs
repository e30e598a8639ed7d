//! The operator's catalogue of commands a worker may run (`--commands FILE`, YAML).
//!
//! A task names a command; it never brings an argv of its own. What a client can vary is only
//! what the catalogue allows: arguments that match the command's pattern (none without one),
//! stdin (unless refused), and a time limit up to the declared bound. So write access to
//! ZooKeeper does not mean running arbitrary code on a worker. Pure: parsing and checking only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::protocol::validate_id;

/// Default time limit of a command that declares none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default SIGTERM → SIGKILL grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
/// Default bound on the captured output (stdout and stderr together, their tails kept).
pub const DEFAULT_MAX_OUTPUT: usize = 32 * 1024;
/// Largest `max_output` accepted. A result must fit its znode (64 KiB), so a result keeps at
/// most about 60 KiB of output whatever the bound; a larger bound only costs memory.
pub const MAX_MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// Default and largest number of client arguments.
pub const DEFAULT_MAX_ARGS: usize = 32;
pub const MAX_MAX_ARGS: usize = 1024;

/// The catalogue file as written (unknown keys are refused, so a typo names its line).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    commands: BTreeMap<String, CommandFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandFile {
    argv: Vec<String>,
    #[serde(default)]
    args: Option<String>,
    #[serde(default)]
    max_args: Option<usize>,
    #[serde(default)]
    stdin: Option<bool>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    grace: Option<String>,
    #[serde(default)]
    max_output: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    workdir: Option<PathBuf>,
}

/// One declared command, checked.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub name: String,
    /// The program and its fixed arguments; client arguments are appended.
    pub argv: Vec<String>,
    /// The pattern every client argument must match as a whole; `None`: no client arguments.
    pub args: Option<Regex>,
    pub max_args: usize,
    pub stdin: bool,
    /// Default and upper bound of a task's `timeout_ms`.
    pub timeout: Duration,
    pub grace: Duration,
    pub max_output: usize,
    /// The command's whole environment besides `PATH` (the worker's own is not passed on: it
    /// may hold the ZooKeeper secret).
    pub env: BTreeMap<String, String>,
    pub workdir: Option<PathBuf>,
}

/// The commands a worker declares. Empty when the worker was given no catalogue.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    commands: BTreeMap<String, CommandSpec>,
}

/// Why a task's command cannot run; the task gets this as its error result at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("command {0:?} is not declared by this worker's catalogue")]
    Unknown(String),
    #[error("command {command:?} takes no arguments from the task")]
    NoArgs { command: String },
    #[error("command {command:?} takes at most {max} arguments, the task gave {given}")]
    TooManyArgs { command: String, max: usize, given: usize },
    #[error("argument {index} ({arg:?}) does not match the pattern of command {command:?}")]
    BadArg { command: String, index: usize, arg: String },
    #[error("command {command:?} takes no stdin")]
    NoStdin { command: String },
    #[error("timeout_ms {asked} is above command {command:?}'s bound of {bound} ms")]
    TimeoutAboveBound { command: String, asked: u64, bound: u64 },
    #[error("timeout_ms must be at least 1")]
    ZeroTimeout,
}

impl Catalogue {
    /// Parses a catalogue; the error names what is wrong and where (line and column).
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let file: CatalogueFile = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        let mut commands = BTreeMap::new();
        for (name, c) in file.commands {
            let spec = check_command(&name, c).map_err(|e| format!("commands.{name}: {e}"))?;
            commands.insert(name, spec);
        }
        Ok(Self { commands })
    }

    /// Reads and parses a catalogue file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the command catalogue {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("command catalogue {}: {e}", path.display()))
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }

    /// Checks a task's request against the catalogue: the command to run, its full argv and its
    /// time limit, or why not.
    pub fn admit(
        &self,
        command: &str,
        args: &[String],
        stdin: bool,
        timeout_ms: Option<u64>,
    ) -> Result<Admitted<'_>, Refusal> {
        let spec = self
            .commands
            .get(command)
            .ok_or_else(|| Refusal::Unknown(command.to_string()))?;
        let refuse_name = || spec.name.clone();
        match &spec.args {
            None if !args.is_empty() => return Err(Refusal::NoArgs { command: refuse_name() }),
            None => {}
            Some(pattern) => {
                if args.len() > spec.max_args {
                    return Err(Refusal::TooManyArgs {
                        command: refuse_name(),
                        max: spec.max_args,
                        given: args.len(),
                    });
                }
                if let Some((index, arg)) = args.iter().enumerate().find(|(_, a)| !pattern.is_match(a)) {
                    return Err(Refusal::BadArg {
                        command: refuse_name(),
                        index,
                        arg: arg.chars().take(64).collect(),
                    });
                }
            }
        }
        if stdin && !spec.stdin {
            return Err(Refusal::NoStdin { command: refuse_name() });
        }
        let bound = spec.timeout.as_millis() as u64;
        let timeout = match timeout_ms {
            None => spec.timeout,
            Some(0) => return Err(Refusal::ZeroTimeout),
            Some(ms) if ms > bound => {
                return Err(Refusal::TimeoutAboveBound {
                    command: refuse_name(),
                    asked: ms,
                    bound,
                })
            }
            Some(ms) => Duration::from_millis(ms),
        };
        let mut argv = spec.argv.clone();
        argv.extend(args.iter().cloned());
        Ok(Admitted { spec, argv, timeout })
    }
}

/// A request the catalogue admitted.
#[derive(Debug)]
pub struct Admitted<'a> {
    pub spec: &'a CommandSpec,
    pub argv: Vec<String>,
    pub timeout: Duration,
}

fn check_command(name: &str, c: CommandFile) -> Result<CommandSpec, String> {
    validate_id(name).map_err(|e| format!("invalid command name: {e}"))?;
    if c.argv.is_empty() || c.argv[0].is_empty() {
        return Err("argv must name a program".into());
    }
    if c.argv.iter().any(|a| a.contains('\0')) {
        return Err("argv must not contain NUL bytes".into());
    }
    let args = match c.args {
        None => None,
        Some(p) => Some(Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("args: invalid pattern: {e}"))?),
    };
    let max_args = c.max_args.unwrap_or(DEFAULT_MAX_ARGS);
    if max_args > MAX_MAX_ARGS {
        return Err(format!("max_args: {max_args} is over {MAX_MAX_ARGS}"));
    }
    let duration = |field: &str, v: Option<String>, default: Duration| -> Result<Duration, String> {
        match v {
            None => Ok(default),
            Some(s) => humantime::parse_duration(&s)
                .map_err(|e| format!("{field}: {s:?} is not a duration ({e}; e.g. 10s, 2m)")),
        }
    };
    let timeout = duration("timeout", c.timeout, DEFAULT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err("timeout: must be above zero".into());
    }
    let grace = duration("grace", c.grace, DEFAULT_GRACE)?;
    let max_output = match c.max_output {
        None => DEFAULT_MAX_OUTPUT,
        Some(s) => parse_size(&s).map_err(|e| format!("max_output: {e}"))?,
    };
    if max_output > MAX_MAX_OUTPUT {
        return Err(format!("max_output: {max_output} bytes is over {MAX_MAX_OUTPUT}"));
    }
    if let Some(key) = c
        .env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(format!("env: invalid variable name {key:?}"));
    }
    if c.env.values().any(|v| v.contains('\0')) {
        return Err("env: values must not contain NUL bytes".into());
    }
    Ok(CommandSpec {
        name: name.to_string(),
        argv: c.argv,
        args,
        max_args,
        stdin: c.stdin.unwrap_or(true),
        timeout,
        grace,
        max_output,
        env: c.env,
        workdir: c.workdir,
    })
}

/// Parses a byte size: `4096`, `64KiB`, `1MiB`, `10kB` (kB/MB are powers of ten).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64KiB, 1MiB)"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?} (B, KiB, MiB, kB, MB)")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
commands:
  checksum:
    argv: ["sha256sum"]
    timeout: 10s
  convert:
    argv: ["convert"]
    args: '^[A-Za-z0-9_./-]+$'
    timeout: 2m
    max_output: 256KiB
  quiet:
    argv: ["true"]
    stdin: false
"#;

    #[test]
    fn the_issue_example_parses_with_its_defaults() {
        let c = Catalogue::parse(EXAMPLE).unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["checksum", "convert", "quiet"]);
        let a = c.admit("checksum", &[], true, None).unwrap();
        assert_eq!(a.argv, ["sha256sum"]);
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert_eq!(a.spec.max_output, DEFAULT_MAX_OUTPUT);
        assert_eq!(
            c.admit("convert", &[], false, None).unwrap().spec.max_output,
            256 * 1024
        );
    }

    #[test]
    fn arguments_must_be_allowed_and_match_the_whole_pattern() {
        let c = Catalogue::parse(EXAMPLE).unwrap();
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = c.admit("convert", &args(&["in.png", "out.jpg"]), false, None).unwrap();
        assert_eq!(ok.argv, ["convert", "in.png", "out.jpg"]);
        // A pattern that matches part of the argument is not enough.
        assert!(matches!(
            c.admit("convert", &args(&["a.png; rm -rf /"]), false, None),
            Err(Refusal::BadArg { index: 0, .. })
        ));
        assert!(matches!(
            c.admit("checksum", &args(&["-c"]), false, None),
            Err(Refusal::NoArgs { .. })
        ));
        let many = vec!["a".to_string(); DEFAULT_MAX_ARGS + 1];
        assert!(matches!(
            c.admit("convert", &many, false, None),
            Err(Refusal::TooManyArgs { .. })
        ));
    }

    #[test]
    fn unknown_commands_stdin_and_time_limits_are_refused_with_reasons() {
        let c = Catalogue::parse(EXAMPLE).unwrap();
        assert_eq!(
            c.admit("rm", &[], false, None).unwrap_err().to_string(),
            "command \"rm\" is not declared by this worker's catalogue"
        );
        assert!(matches!(
            c.admit("quiet", &[], true, None),
            Err(Refusal::NoStdin { .. })
        ));
        assert!(matches!(
            c.admit("checksum", &[], false, Some(10_001)),
            Err(Refusal::TimeoutAboveBound { bound: 10_000, .. })
        ));
        assert_eq!(
            c.admit("checksum", &[], false, Some(0)).unwrap_err(),
            Refusal::ZeroTimeout
        );
        assert_eq!(
            c.admit("checksum", &[], false, Some(1500)).unwrap().timeout,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn mistakes_in_the_file_are_named_with_their_place() {
        let typo = "commands:\n  a:\n    argv: [\"true\"]\n    tiemout: 1s\n";
        let e = Catalogue::parse(typo).unwrap_err();
        assert!(e.contains("tiemout") && e.contains("line 4"), "{e}");
        for (yaml, needle) in [
            (
                "commands:\n  a:\n    argv: []\n",
                "commands.a: argv must name a program",
            ),
            (
                "commands:\n  a:\n    argv: [x]\n    timeout: soon\n",
                "commands.a: timeout",
            ),
            (
                "commands:\n  a:\n    argv: [x]\n    args: '('\n",
                "commands.a: args: invalid pattern",
            ),
            (
                "commands:\n  a:\n    argv: [x]\n    max_output: 3 parsecs\n",
                "commands.a: max_output",
            ),
            ("commands:\n  a b:\n    argv: [x]\n", "invalid command name"),
            ("commands:\n  a:\n    argv: [x]\n    timeout: 0s\n", "above zero"),
            ("nothing: here\n", "unknown field `nothing`"),
        ] {
            let e = Catalogue::parse(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("256KiB").unwrap(), 262_144);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("10kB").unwrap(), 10_000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1GiB").is_err());
    }
}
