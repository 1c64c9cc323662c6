//! The build script's view of the outside tools matches what is really here, so a test marked
//! ignored for a missing tool is ignored for a true reason, and one that needs a present tool
//! runs.

use std::path::Path;

fn on_path(name: &str, extra: &[&str]) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(extra.iter().map(|dir| Path::new(dir).to_owned()))
        .any(|dir| dir.join(name).is_file())
}

#[test]
fn the_build_script_saw_the_tools_that_are_here() {
    let sshd = ["sshd", "ssh", "ssh-keygen"]
        .iter()
        .all(|name| on_path(name, &["/usr/sbin"]));
    assert_eq!(cfg!(has_sshd), sshd, "has_sshd is stale: rebuild");
    assert_eq!(
        cfg!(has_grpcurl),
        on_path("grpcurl", &[]),
        "has_grpcurl is stale: rebuild"
    );
    assert_eq!(
        cfg!(has_root),
        rustix::process::geteuid().is_root(),
        "has_root is stale: rebuild"
    );
}
