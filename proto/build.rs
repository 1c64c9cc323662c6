//! Generates the Rust code for `proto/warren/v1/*.proto` without `protoc`: protox parses the
//! files into a descriptor set, which also ships inside the crate for gRPC reflection.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "warren/v1/task.proto",
    "warren/v1/interact.proto",
    "warren/v1/execution.proto",
    "warren/v1/control.proto",
    "warren/v1/registration.proto",
    "warren/v1/sessions.proto",
    "warren/v1/files.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    // compile_fds ignores file_descriptor_set_path, so the set is written here for reflection.
    fs::write(
        out_dir.join("warren_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Output chunks move through the hub without being copied.
        .bytes(".warren.v1.OutputChunk.data")
        .bytes(".warren.v1.TaskOutput.data")
        .bytes(".warren.v1.TaskSpec.stdin")
        .bytes(".warren.v1.InteractRequest.stdin")
        .bytes(".warren.v1.StdinData.data")
        // File bytes too: the hub hands one chunk to every engine of an upload.
        .bytes(".warren.v1.CopyItem.data")
        .compile_fds(descriptors)?;
    Ok(())
}
