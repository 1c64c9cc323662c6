//! The cell protocol's drivers (`engine/src/drivers/`) and the custom adapter written from
//! `docs/cell-protocol.md`, driven through real pipes by `tests/cells/harness.py`, which plays
//! the engine's part. The sessions tests drive the same drivers through real engines.

use std::path::Path;
use std::process::Command;

#[test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
fn the_drivers_and_the_custom_adapter_keep_the_cell_protocol() {
    let cells = Path::new(env!("CARGO_MANIFEST_DIR")).join("cells");
    let output = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(&cells)
        .current_dir(&cells)
        .output()
        .expect("run python3 -m unittest");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the cell protocol tests failed:\n{report}"
    );
    // A run that found no tests would pass too: make sure they ran.
    let ran = report
        .lines()
        .find_map(|line| {
            line.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(
        ran >= 40,
        "expected the driver tests to run, saw {ran}:\n{report}"
    );
}
