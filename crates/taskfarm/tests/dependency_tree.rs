//! The product stays lean: what master, worker and client pods run depends on neither the
//! Kubernetes crates nor the lab's. Checked on the resolved tree, so a new dependency that
//! pulls one of them in transitively fails here too.

use std::process::Command;

const FORBIDDEN: [&str; 6] = [
    "kube",
    "k8s-openapi",
    "plotters",
    "indicatif",
    "taskfarm-operator",
    "taskfarm-lab",
];

#[test]
fn the_role_binarys_package_depends_on_no_kubernetes_or_lab_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Every edge kind (normal, build, dev): not even the product's own tests pull them in.
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "taskfarm",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        names.contains(&"zookeeper-client"),
        "unexpected cargo tree output:\n{tree}"
    );
    let found: Vec<&str> = FORBIDDEN.iter().copied().filter(|f| names.contains(f)).collect();
    assert!(found.is_empty(), "the product depends on {found:?}:\n{tree}");
}
