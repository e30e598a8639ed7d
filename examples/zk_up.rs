//! Starts a ZooKeeper cluster and waits for Enter (manual experiments).
fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let c = taskfarm::harness::ZkCluster::ensemble(n, Default::default())?;
    println!("{}", c.connect_string());
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(())
}
