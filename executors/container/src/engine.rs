//! The container engines: podman and the docker CLI. Finding them, the command line of a
//! run, removing a container, and what their exit statuses and messages mean.
//!
//! Only argument lists are built here; starting and watching the run is `lib.rs`'s.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A container engine's command-line interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// podman (daemonless; rootful or rootless).
    Podman,
    /// The docker CLI, talking to a Docker daemon (or anything speaking its API).
    Docker,
}

impl Engine {
    /// The command's name.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }

    /// The engine to use: the one asked for, else podman when it is on `PATH`, else docker.
    pub fn resolve(asked: Option<Engine>) -> Result<(Engine, PathBuf), String> {
        let candidates: &[Engine] = match &asked {
            Some(e) => std::slice::from_ref(e),
            None => &[Engine::Podman, Engine::Docker],
        };
        for e in candidates {
            if let Some(path) = on_path(e.program()) {
                return Ok((*e, path));
            }
        }
        Err(match asked {
            Some(e) => format!(
                "{} not found on PATH: install it, or set engine to the one you have",
                e.program()
            ),
            None => "no container engine found (neither podman nor docker is on PATH): install podman (Debian: apt-get install podman runc) or docker".into(),
        })
    }

    /// Arguments that remove a container at once, running or not, and never fail for a
    /// missing one.
    pub fn remove_args(self, name: &str) -> Vec<String> {
        let args: &[&str] = match self {
            Engine::Podman => &["rm", "--force", "--ignore", "--time", "0", name],
            // docker's --force kills at once; a missing container is an error we ignore.
            Engine::Docker => &["rm", "--force", name],
        };
        args.iter().map(|s| s.to_string()).collect()
    }

    /// Whether a failed run's stderr says the image is not there.
    pub fn image_missing(self, stderr: &str) -> bool {
        let s = stderr.to_ascii_lowercase();
        s.contains("image not known")
            || s.contains("no such image")
            || s.contains("unable to find image")
            || s.contains("manifest unknown")
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where things are inside the container.
pub const TASK_DIR: &str = "/covalent/task";
/// Where the worker binary is mounted.
pub const BIN_DIR: &str = "/covalent/bin";

/// Everything one run needs besides the executor's options.
pub struct RunSpec<'a> {
    pub name: &'a str,
    pub task_dir: &'a Path,
    pub binary: &'a Path,
}

/// The full argument list of `ENGINE ... run ... IMAGE WORKER`.
pub fn run_args(
    e: &crate::ContainerExecutor,
    engine: Engine,
    spec: &RunSpec<'_>,
) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    match engine {
        Engine::Podman => {
            // Global options: they come before the subcommand.
            if let Some(r) = &e.runtime {
                push(&["--runtime", r]);
            }
            if let Some(c) = &e.cgroup_manager {
                push(&["--cgroup-manager", c]);
            }
            push(&["run"]);
        }
        Engine::Docker => {
            if e.cgroup_manager.is_some() {
                return Err("cgroup_manager is a podman option; docker takes its cgroup driver from the daemon's configuration".into());
            }
            push(&["run"]);
            if let Some(r) = &e.runtime {
                push(&["--runtime", r]);
            }
        }
    }
    if e.image.is_empty() {
        return Err("image is empty: name the image tasks run in".into());
    }
    let file = spec
        .binary
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "worker".into());
    let worker = format!("{BIN_DIR}/{file}");
    push(&[
        "--name",
        spec.name,
        "--pull",
        "never",
        "--workdir",
        TASK_DIR,
    ]);
    if e.remove {
        push(&["--rm"]);
    }
    if e.init {
        push(&["--init"]);
    }
    if let Some(n) = &e.network {
        push(&["--network", n]);
    }
    let bin_mount = format!("{}:{worker}:ro", spec.binary.display());
    let task_mount = format!("{}:{TASK_DIR}", spec.task_dir.display());
    for m in [&bin_mount, &task_mount] {
        if m.matches(':').count() > 2 {
            return Err(format!("a path with ':' cannot be mounted: {m}"));
        }
    }
    push(&["--volume", &bin_mount, "--volume", &task_mount]);
    for m in &e.mounts {
        push(&["--volume", m]);
    }
    let task_env = format!(
        "{}={TASK_DIR}/task.json",
        covalent::executor::worker::TASK_ENV
    );
    let result_env = format!(
        "{}={TASK_DIR}/result.json",
        covalent::executor::worker::RESULT_ENV
    );
    push(&["--env", &task_env, "--env", &result_env]);
    for (k, v) in &e.env {
        if k.is_empty() || k.contains('=') {
            return Err(format!("env: `{k}` is not a valid variable name"));
        }
        push(&["--env", &format!("{k}={v}")]);
    }
    for o in &e.run_options {
        push(&[o]);
    }
    push(&[&e.image, &worker]);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerExecutor;

    fn spec() -> RunSpec<'static> {
        RunSpec {
            name: "covalent-t",
            task_dir: Path::new("/cache/container/covalent-t"),
            binary: Path::new("/target/debug/app"),
        }
    }

    #[test]
    fn podman_command_line() {
        let e = ContainerExecutor {
            image: "worker-image".into(),
            runtime: Some("runc".into()),
            cgroup_manager: Some("cgroupfs".into()),
            network: Some("none".into()),
            env: [("K".to_string(), "v w".to_string())].into(),
            mounts: vec!["/data:/data:ro".into()],
            run_options: vec!["--memory=1g".into()],
            ..Default::default()
        };
        let a = run_args(&e, Engine::Podman, &spec()).unwrap().join(" ");
        assert!(a.starts_with("--runtime runc --cgroup-manager cgroupfs run --name covalent-t --pull never --workdir /covalent/task --rm --init --network none"), "{a}");
        for part in [
            "--volume /target/debug/app:/covalent/bin/app:ro",
            "--volume /cache/container/covalent-t:/covalent/task",
            "--volume /data:/data:ro",
            "--env COVALENT_WORKER_TASK=/covalent/task/task.json",
            "--env COVALENT_WORKER_RESULT=/covalent/task/result.json",
            "--env K=v w",
            "--memory=1g worker-image /covalent/bin/app",
        ] {
            assert!(a.contains(part), "missing {part:?} in {a}");
        }
        assert!(a.ends_with("worker-image /covalent/bin/app"));
    }

    #[test]
    fn docker_has_no_cgroup_manager_option() {
        let e = ContainerExecutor {
            cgroup_manager: Some("cgroupfs".into()),
            ..Default::default()
        };
        assert!(run_args(&e, Engine::Docker, &spec()).is_err());
        let e = ContainerExecutor {
            runtime: Some("runsc".into()),
            ..Default::default()
        };
        let a = run_args(&e, Engine::Docker, &spec()).unwrap().join(" ");
        assert!(a.starts_with("run --runtime runsc --name"), "{a}");
    }

    #[test]
    fn removal_and_missing_images() {
        assert_eq!(
            Engine::Podman.remove_args("c").join(" "),
            "rm --force --ignore --time 0 c"
        );
        assert_eq!(Engine::Docker.remove_args("c").join(" "), "rm --force c");
        assert!(Engine::Podman.image_missing("Error: nope: image not known"));
        assert!(
            Engine::Docker.image_missing("Error response from daemon: No such image: nope:latest")
        );
        assert!(!Engine::Podman.image_missing("Error: some other failure"));
    }
}
