//! Writes the CustomResourceDefinitions generated from the Rust types to `crds/` and to the Helm
//! chart's `crds/`. With `--check` it writes nothing and fails when a committed file differs, which
//! is how CI catches YAML that drifted from the types.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("crdgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let directories: [PathBuf; 2] = [root.join("crds"), root.join("charts/govdc/crds")];
    let mut up_to_date = true;
    for crd in govdc_crds::custom_resource_definitions() {
        let yaml = govdc_crds::crd_yaml(&crd)?;
        let name = govdc_crds::crd_file_name(&crd);
        for directory in &directories {
            let path = directory.join(&name);
            if check {
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                if committed != yaml {
                    eprintln!(
                        "crdgen: {} differs from the types; run `cargo run -p govdc-operator --bin crdgen`",
                        path.display()
                    );
                    up_to_date = false;
                }
            } else {
                std::fs::create_dir_all(directory)
                    .with_context(|| format!("creating {}", directory.display()))?;
                std::fs::write(&path, &yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(up_to_date)
}
