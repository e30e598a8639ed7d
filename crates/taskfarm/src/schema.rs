//! The JSON Schemas of the znode contract (docs/schema/), generated from the Rust types that
//! read and write each znode, so that the published definition cannot drift from the code
//! (tests/schema.rs compares the committed files with these).
//!
//! Pure: building the schemas needs no I/O; [`write_all`] is the generator behind
//! `taskfarm zk schema DIR`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use schemars::{JsonSchema, Schema};

use crate::exec::ExecOutput;
use crate::protocol::{
    CandidateInfo, FarmStatus, TaskRecord, TaskResult, WorkerRecord, MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES,
    MAX_RESULT_BYTES, MAX_STATUS_BYTES,
};
use crate::task::TaskSpec;

/// One published schema: its file name under docs/schema/ and the schema.
pub struct SchemaFile {
    pub file: &'static str,
    pub schema: Schema,
}

/// Every record and payload of the contract, one file each.
pub fn all() -> Vec<SchemaFile> {
    vec![
        one::<TaskRecord>(
            "task-record.json",
            "Task record",
            format!("Data of `/tasks/<id>` (at most {MAX_RECORD_BYTES} bytes). PROTOCOL.md §3."),
        ),
        one::<WorkerRecord>(
            "worker-record.json",
            "Worker record",
            format!(
                "Data of `/workers/<id>`: `{{}}` when free, the assignment when busy (at most {MAX_RECORD_BYTES} \
                 bytes). PROTOCOL.md §3."
            ),
        ),
        one::<FarmStatus>(
            "farm-status.json",
            "Farm status",
            format!(
                "Data of `/status` when not empty, written by the leading master (at most {MAX_STATUS_BYTES} \
                 bytes). PROTOCOL.md §3."
            ),
        ),
        one::<CandidateInfo>(
            "candidate.json",
            "Election candidate",
            format!("Data of `/master/_c_<uuid>-latch-<seq10>` (at most {MAX_RECORD_BYTES} bytes). PROTOCOL.md §3."),
        ),
        one::<TaskSpec>(
            "task-payload.json",
            "Task payload",
            format!(
                "Data of `/data/<id>` at version 0, as the client created it (at most {MAX_PAYLOAD_BYTES} bytes): \
                 one object per `kind`; unknown fields are refused. PROTOCOL.md §3."
            ),
        ),
        one::<TaskResult>(
            "task-result.json",
            "Task result",
            format!(
                "Data of `/data/<id>` from version 1 on, written by the commit that completes the task (its \
                 `value` at most {MAX_RESULT_BYTES} bytes serialized). PROTOCOL.md §3."
            ),
        ),
        one::<ExecOutput>(
            "exec-output.json",
            "Exec output",
            "The `value` of an `exec` task's result, success or failure. PROTOCOL.md §3.".to_string(),
        ),
    ]
}

fn one<T: JsonSchema>(file: &'static str, title: &str, description: String) -> SchemaFile {
    let mut schema = schemars::schema_for!(T);
    // Records are read by roles of other revisions: the title and description say where the
    // data lives, the comment where the file comes from.
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
    schema.insert(
        "$comment".into(),
        "Generated from crates/taskfarm/src by `taskfarm zk schema docs/schema`; do not edit.".into(),
    );
    SchemaFile { file, schema }
}

/// The text of a schema file: pretty JSON and a final newline (stable, so diffs are small).
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// Writes every schema into `dir` (created if missing); returns the files written.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for f in all() {
        let path = dir.join(f.file);
        std::fs::write(&path, render(&f.schema)).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_has_its_own_file_and_renders_stably() {
        let files = all();
        let mut names: Vec<_> = files.iter().map(|f| f.file).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), files.len());
        for f in &files {
            assert_eq!(render(&f.schema), render(&f.schema));
            assert!(render(&f.schema).ends_with("}\n"));
        }
    }

    #[test]
    fn the_id_pattern_agrees_with_validate_id() {
        let re = regex::Regex::new(crate::protocol::ID_PATTERN).unwrap();
        let long = "a".repeat(128);
        let too_long = "a".repeat(129);
        for id in [
            "t1",
            "c-1a2b-00000001",
            "w_3.x",
            "-x",
            "_",
            &long,
            "",
            ".hidden",
            "a/b",
            "sp ace",
            "ü",
            &too_long,
        ] {
            assert_eq!(re.is_match(id), crate::protocol::validate_id(id).is_ok(), "{id:?}");
        }
    }
}
