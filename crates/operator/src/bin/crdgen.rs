//! Prints the TaskFarm CustomResourceDefinition as YAML (`cargo run -q -p taskfarm-operator --bin
//! crdgen > crds/taskfarm.yaml`); CI fails when the committed copies drift from it.

fn main() -> anyhow::Result<()> {
    print!("{}", taskfarm_operator::crd_yaml()?);
    Ok(())
}
