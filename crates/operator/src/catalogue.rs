//! `spec.commands` as the workers read it: the catalogue file (`taskfarm worker --commands FILE`),
//! rendered from the spec and checked by the worker's own parser, so that the controller refuses
//! exactly what a worker would. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::crd::CommandSpec;

/// The ConfigMap key holding the catalogue, and the file name the workers see.
pub const FILE: &str = "commands.yaml";
/// Where the worker pods mount the ConfigMap.
pub const MOUNT_DIR: &str = "/etc/taskfarm";

/// The catalogue file of a farm: `commands: {}` when it declares none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The file, YAML in the worker's format.
    pub yaml: String,
    /// Whether it declares any command (the workers mount it only then).
    pub has_commands: bool,
}

impl Rendered {
    /// SHA-256 of the file (hex): the worker pods carry it, so that a new catalogue rolls them
    /// (a worker reads its catalogue once, at start).
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.yaml.as_bytes()))
    }
}

/// The worker's file format: the spec's fields, with the worker's names.
#[derive(Serialize)]
struct File<'a> {
    commands: BTreeMap<&'a str, Command<'a>>,
}

#[derive(Serialize)]
struct Command<'a> {
    argv: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_args: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workdir: Option<&'a str>,
}

/// Renders `spec.commands` into the worker's catalogue file and parses it as a worker would;
/// the error is the worker's own message.
pub fn render(commands: &BTreeMap<String, CommandSpec>) -> Result<Rendered, String> {
    let file = File {
        commands: commands
            .iter()
            .map(|(name, c)| {
                let command = Command {
                    argv: &c.argv,
                    args: c.args.as_deref(),
                    max_args: c.max_args,
                    stdin: c.stdin,
                    timeout: c.timeout.as_deref(),
                    grace: c.grace.as_deref(),
                    max_output: c.max_output.as_deref(),
                    env: &c.env,
                    workdir: c.workdir.as_deref(),
                };
                (name.as_str(), command)
            })
            .collect(),
    };
    let yaml = serde_yaml::to_string(&file).map_err(|e| e.to_string())?;
    taskfarm::exec::Catalogue::parse(&yaml)?;
    Ok(Rendered {
        yaml,
        has_commands: !commands.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(argv: &[&str]) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..CommandSpec::default()
        }
    }

    #[test]
    fn the_spec_becomes_the_workers_file_with_the_workers_names() {
        let mut checksum = command(&["sha256sum"]);
        checksum.args = Some("^[A-Za-z0-9_./-]+$".into());
        checksum.max_args = Some(4);
        checksum.stdin = Some(true);
        checksum.timeout = Some("10s".into());
        checksum.grace = Some("1s".into());
        checksum.max_output = Some("256KiB".into());
        checksum.env = BTreeMap::from([("LC_ALL".to_string(), "C".to_string())]);
        checksum.workdir = Some("/tmp".into());
        let rendered = render(&BTreeMap::from([("checksum".to_string(), checksum)])).unwrap();
        assert!(rendered.has_commands);
        let file: serde_yaml::Value = serde_yaml::from_str(&rendered.yaml).unwrap();
        let c = &file["commands"]["checksum"];
        assert_eq!(c["argv"][0], "sha256sum");
        assert_eq!(c["max_args"], 4);
        assert_eq!(c["max_output"], "256KiB");
        assert_eq!(c["env"]["LC_ALL"], "C");
        assert_eq!(c["workdir"], "/tmp");
        // The worker reads it back.
        let catalogue = taskfarm::exec::Catalogue::parse(&rendered.yaml).unwrap();
        let admitted = catalogue.admit("checksum", &["a.txt".into()], true, None).unwrap();
        assert_eq!(admitted.argv, ["sha256sum", "a.txt"]);
        assert_eq!(admitted.timeout, std::time::Duration::from_secs(10));
    }

    #[test]
    fn absent_fields_stay_absent_for_the_workers_defaults() {
        let rendered = render(&BTreeMap::from([("quiet".to_string(), command(&["true"]))])).unwrap();
        assert_eq!(rendered.yaml, "commands:\n  quiet:\n    argv:\n    - 'true'\n");
    }

    #[test]
    fn no_commands_is_an_empty_catalogue() {
        let rendered = render(&BTreeMap::new()).unwrap();
        assert_eq!(rendered.yaml, "commands: {}\n");
        assert!(!rendered.has_commands);
        assert!(taskfarm::exec::Catalogue::parse(&rendered.yaml).unwrap().is_empty());
    }

    #[test]
    fn a_catalogue_the_worker_refuses_is_refused_with_its_message() {
        let mut slow = command(&["sleep"]);
        slow.timeout = Some("soon".into());
        let e = render(&BTreeMap::from([("slow".to_string(), slow)])).unwrap_err();
        assert!(
            e.starts_with("commands.slow: timeout: \"soon\" is not a duration"),
            "{e}"
        );
        let e = render(&BTreeMap::from([("a b".to_string(), command(&["true"]))])).unwrap_err();
        assert!(e.contains("invalid command name"), "{e}");
        let e = render(&BTreeMap::from([("none".to_string(), command(&[""]))])).unwrap_err();
        assert_eq!(e, "commands.none: argv must name a program");
    }

    #[test]
    fn the_digest_follows_the_file() {
        let one = render(&BTreeMap::from([("a".to_string(), command(&["true"]))])).unwrap();
        let two = render(&BTreeMap::from([("a".to_string(), command(&["false"]))])).unwrap();
        assert_eq!(one.digest().len(), 64);
        assert_ne!(one.digest(), two.digest());
        assert_eq!(one.digest(), one.clone().digest());
    }
}
