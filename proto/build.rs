//! Generates the Rust code for `proto/warren/v1/*.proto` without `protoc`: protox parses the
//! files into a descriptor set, which also ships inside the crate for gRPC reflection. With the
//! `json` feature, pbjson-build makes serde impls from the same set.

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
    let encoded = descriptors.encode_to_vec();
    // compile_fds ignores file_descriptor_set_path, so the set is written here for reflection.
    fs::write(out_dir.join("warren_descriptor.bin"), &encoded)?;

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
    #[cfg(feature = "json")]
    json(&encoded)?;
    Ok(())
}

/// serde impls in the protobuf JSON mapping, from the same descriptor set: lowerCamelCase
/// names, enums by name, 64-bit integers as strings, bytes in base64, defaults left out, as
/// grpcurl prints them.
#[cfg(feature = "json")]
fn json(descriptors: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    pbjson_build::Builder::new()
        .register_descriptors(descriptors)?
        .build(&[".warren.v1"])?;
    Ok(())
}
