//! The `ssh` command line of a target: the user's options, batch mode, time-outs and one
//! shared `ControlMaster` connection per target, whose socket lives in a short directory
//! private to this user (Unix socket paths are limited to about 104 bytes).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::options::expand_home;
use crate::{RemoteError, SshOptions};

/// How long an idle shared connection stays open after its last command.
const CONTROL_PERSIST_SECS: u32 = 120;

/// The `ssh` options of a target, up to the destination (`-- host`). Where ssh takes the first
/// value given for an option, ours come first and `options` cannot override them.
pub(crate) fn ssh_args(o: &SshOptions, control_path: &Path) -> Vec<OsString> {
    let connect = o.connect_timeout.as_secs() + u64::from(o.connect_timeout.subsec_nanos() > 0);
    let strict = if o.strict_host_key_checking {
        "yes"
    } else {
        "accept-new"
    };
    let mut args: Vec<OsString> = vec!["-T".into()];
    let mut opt = |s: String| {
        args.push("-o".into());
        args.push(s.into());
    };
    opt("BatchMode=yes".into());
    opt(format!("ConnectTimeout={}", connect.max(1)));
    opt(format!("StrictHostKeyChecking={strict}"));
    if o.control_path.is_some() {
        // The user's own master: ridden on, never started or kept open by us.
        opt("ControlMaster=no".into());
        opt(format!("ControlPath={}", control_path.display()));
    } else {
        opt("ControlMaster=auto".into());
        opt(format!("ControlPath={}", control_path.display()));
        opt(format!("ControlPersist={CONTROL_PERSIST_SECS}"));
    }
    opt("ServerAliveInterval=5".into());
    opt("ServerAliveCountMax=3".into());
    opt("LogLevel=ERROR".into());
    if let Some(k) = &o.known_hosts {
        opt(format!("UserKnownHostsFile={}", expand_home(k).display()));
    }
    if o.ssh_key_file.is_some() {
        opt("IdentitiesOnly=yes".into());
    }
    for extra in &o.options {
        opt(extra.clone());
    }
    if let Some(k) = &o.ssh_key_file {
        args.push("-i".into());
        args.push(expand_home(k).into());
    }
    if let Some(f) = &o.ssh_config {
        args.push("-F".into());
        args.push(expand_home(f).into());
    }
    if let Some(p) = o.port {
        args.push("-p".into());
        args.push(p.to_string().into());
    }
    if let Some(u) = &o.username {
        args.push("-l".into());
        args.push(u.into());
    }
    args.push("--".into());
    args.push(o.hostname.clone().into());
    args
}

/// The longest control socket path we make: ssh adds 17 characters to it while it sets up a
/// master, and a Unix socket path has at most 104 (macOS) or 108 (Linux) bytes.
pub(crate) const MAX_CONTROL_PATH: usize = 64;

/// Where the control sockets go: `cvr-<uid>` under the temporary directory when that is short,
/// else under `/tmp`; private to this user (created `0700`, refused when someone else owns it
/// or can enter it).
pub(crate) fn control_dir() -> Result<PathBuf, RemoteError> {
    // SAFETY: geteuid has no preconditions and cannot fail (the one unsafe call of this crate).
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    let dir = control_dir_in(&std::env::temp_dir(), uid);
    make_private_dir(&dir, uid).map_err(|e| {
        RemoteError::Local(format!(
            "cannot use {} for ssh control sockets: {e}",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// The control directory for a temporary directory and user: short enough for a socket name
/// of 16 characters in it to stay under [`MAX_CONTROL_PATH`].
pub(crate) fn control_dir_in(tmp: &Path, uid: u32) -> PathBuf {
    let name = format!("cvr-{uid}");
    let room = MAX_CONTROL_PATH - name.len() - 2 - 16;
    // ssh reads `%` in a ControlPath as a token and a space as the end of the value.
    let plain = tmp.to_str().is_some_and(|t| {
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    });
    let base = if plain && tmp.is_absolute() && tmp.as_os_str().len() <= room {
        tmp
    } else {
        Path::new("/tmp")
    };
    base.join(name)
}

fn make_private_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "it is not a directory private to user {uid}; remove it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn args(o: &SshOptions) -> Vec<String> {
        ssh_args(o, Path::new("/tmp/cvr-0/k"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_command_line_shares_one_connection_and_ends_with_the_host() {
        let a = args(&SshOptions::new("-oProxyCommand=x"));
        let joined = a.join(" ");
        assert!(joined.starts_with("-T -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPath=/tmp/cvr-0/k -o ControlPersist=120"), "{joined}");
        assert!(!joined.contains("IdentitiesOnly"), "{joined}");
        assert_eq!(
            a[a.len() - 2..],
            ["--", "-oProxyCommand=x"],
            "the host is never an option"
        );
    }

    #[test]
    fn every_option_reaches_ssh_and_extras_come_after_ours() {
        let o = SshOptions {
            username: Some("me".into()),
            port: Some(2222),
            ssh_key_file: Some("/k".into()),
            ssh_config: Some("/cfg".into()),
            known_hosts: Some("/kh".into()),
            strict_host_key_checking: false,
            connect_timeout: Duration::from_millis(2500),
            options: vec!["ProxyJump=bastion".into(), "ControlPersist=1".into()],
            ..SshOptions::new("h")
        };
        let joined = args(&o).join(" ");
        for part in [
            "-o ConnectTimeout=3",
            "-o StrictHostKeyChecking=accept-new",
            "-o UserKnownHostsFile=/kh -o IdentitiesOnly=yes -o ProxyJump=bastion -o ControlPersist=1",
            "-i /k -F /cfg -p 2222 -l me -- h",
        ] {
            assert!(joined.contains(part), "{part} in {joined}");
        }
        let ours = joined.find("ControlPersist=120").unwrap();
        assert!(ours < joined.find("ControlPersist=1 ").unwrap(), "ours win");
    }

    #[test]
    fn the_users_own_master_is_ridden_on_not_started() {
        let o = SshOptions {
            control_path: Some("~/.ssh/cm-%C".into()),
            ..SshOptions::new("h")
        };
        let a = ssh_args(&o, Path::new("~/.ssh/cm-%C"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            a.contains("-o ControlMaster=no -o ControlPath=~/.ssh/cm-%C"),
            "{a}"
        );
        assert!(!a.contains("ControlPersist"), "{a}");
    }

    #[test]
    fn control_paths_stay_short() {
        let deep = Path::new("/home/someone-with-a-long-name/.local/share/some/deeply/nested/tmp");
        for tmp in [
            Path::new("/tmp"),
            Path::new("/var/tmp"),
            deep,
            Path::new("rel"),
            Path::new("/a b"),
            Path::new("/x%h"),
        ] {
            let dir = control_dir_in(tmp, 4_294_967_294);
            let socket = dir.join("0123456789abcdef");
            assert!(
                socket.as_os_str().len() <= MAX_CONTROL_PATH,
                "{}",
                socket.display()
            );
            assert!(socket.as_os_str().len() + 17 < 104);
            assert!(dir.is_absolute());
        }
        assert_eq!(control_dir_in(deep, 1000), Path::new("/tmp/cvr-1000"));
        assert_eq!(
            control_dir_in(Path::new("/x%h"), 1000),
            Path::new("/tmp/cvr-1000")
        );
        assert_eq!(
            control_dir_in(Path::new("/var/tmp"), 7),
            Path::new("/var/tmp/cvr-7")
        );
    }
}
