//! The JavaScript that CI does not otherwise run end to end (the benchmarks) must at least parse; the player's
//! modules are checked too. Uses `node --check` (make test installs Node.js).

use std::path::Path;
use std::process::Command;

#[test]
fn every_script_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["bench", "web", "tests/browser"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("directory exists")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "js" || x == "mjs"))
            .collect();
        files.sort();
        for file in files {
            let out = Command::new("node").arg("--check").arg(&file).output().expect("node runs");
            assert!(
                out.status.success(),
                "{} does not parse:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} scripts found");
}
