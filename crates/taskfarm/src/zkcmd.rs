//! `taskfarm zk init` and `taskfarm zk tree`.

use std::fmt::Write as _;

use anyhow::Context as _;
use zookeeper_client::Error as ZkError;

use crate::zk::{timed, ZkSession};

/// Creates the farm's persistent znodes.
pub async fn init(session: &ZkSession) -> anyhow::Result<()> {
    session.ensure_layout().await?;
    for p in crate::protocol::paths::LAYOUT {
        println!("{p}");
    }
    Ok(())
}

/// Sets the farm's admission bound when one is given, then prints the bound in force.
pub async fn init_bound(config: &crate::zk::ZkConfig, bound: Option<crate::admission::Bound>) -> anyhow::Result<()> {
    if let Some(bound) = bound {
        crate::admission::apply(config, bound)
            .await
            .context("setting the admission bound")?;
    }
    let status = crate::admission::status(config).await?;
    match status.bound {
        Some(b) => println!(
            "admission bound: {} tasks, {} bytes (now held: {})",
            b.tasks,
            b.bytes(),
            status
                .held
                .map_or("unknown".to_string(), |(n, bytes)| format!("{n} tasks, {bytes} bytes"))
        ),
        None => println!("admission bound: none"),
    }
    Ok(())
}

/// Renders the subtree at `root` like zk-shell's `tree`, with each znode's data (shortened) and
/// whether it is ephemeral.
pub async fn tree(session: &ZkSession, root: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    walk(session, root, 0, &mut out).await?;
    Ok(out)
}

async fn walk(session: &ZkSession, path: &str, depth: usize, out: &mut String) -> anyhow::Result<()> {
    let limit = session.request_timeout();
    let (data, stat) = match timed(limit, session.client.get_data(path)).await {
        Ok(x) => x,
        // Deleted while we walked: not an error, just gone.
        Err(ZkError::NoNode) if depth > 0 => return Ok(()),
        // A task's payload or record, readable by the farm's identity only.
        Err(ZkError::NoAuth) if depth > 0 => {
            let _ = writeln!(
                out,
                "{}{} (not readable without the farm's secret)",
                "  ".repeat(depth),
                crate::protocol::paths::name(path)
            );
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let name = if depth == 0 {
        path
    } else {
        crate::protocol::paths::name(path)
    };
    let kind = if stat.ephemeral_owner != 0 { " [ephemeral]" } else { "" };
    let _ = writeln!(out, "{}{}{}{}", "  ".repeat(depth), name, kind, short_data(&data));
    let mut children = match timed(limit, session.client.list_children(path)).await {
        Ok(c) => c,
        Err(ZkError::NoNode) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {path}")),
    };
    children.sort();
    for child in children {
        let child_path = if path == "/" {
            format!("/{child}")
        } else {
            format!("{path}/{child}")
        };
        if child_path == "/zookeeper" {
            continue;
        }
        Box::pin(walk(session, &child_path, depth + 1, out)).await?;
    }
    Ok(())
}

/// ` = <data>` shortened to 60 characters, or nothing for empty data; binary shown as hex.
pub fn short_data(data: &[u8]) -> String {
    if data.is_empty() {
        return String::new();
    }
    let text = match std::str::from_utf8(data) {
        Ok(t) if !t.chars().any(|c| c.is_control() && c != '\n') => t.replace('\n', " "),
        _ => format!("0x{}", hex::encode(&data[..data.len().min(30)])),
    };
    if text.chars().count() > 60 {
        format!(
            " = {}... ({} bytes)",
            text.chars().take(57).collect::<String>(),
            data.len()
        )
    } else {
        format!(" = {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::short_data;

    #[test]
    fn data_is_shortened_and_binary_shown_as_hex() {
        assert_eq!(short_data(b""), "");
        assert_eq!(short_data(b"{}"), " = {}");
        assert_eq!(short_data(&[0, 1, 255]), " = 0x0001ff");
        assert!(short_data("x".repeat(100).as_bytes()).ends_with("(100 bytes)"));
    }
}
