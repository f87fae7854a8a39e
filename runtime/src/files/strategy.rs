//! How a file moves, where the task runs: a local copy (a hard link for a read-only source),
//! rsync over OpenSSH (scp when rsync is missing on either side), an HTTP(S) download. Every
//! strategy writes to a temporary name beside the destination and renames it into place, so a
//! destination holds the whole file or nothing; every arrival is hashed (BLAKE3) and checked
//! against the digest the file is known by, when it is known.
//!
//! This module owns the blocking transfer mechanics; what to transfer and where records go is
//! `scope.rs` and the executors'.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::uri::{Location, SshPath};

/// Quotes a string for a POSIX shell (`'...'`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What a transfer did.
#[derive(Clone, Debug)]
pub(crate) struct Moved {
    pub bytes: u64,
    pub blake3: String,
    pub strategy: &'static str,
}

/// BLAKE3 (hex) and length of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().to_hex().to_string()))
}

/// A fresh temporary name beside `dest`.
pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    dest.with_file_name(format!(
        ".{name}.covalent-{}.part",
        uuid::Uuid::now_v7().simple()
    ))
}

fn make_parent(dest: &Path) -> Result<(), String> {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p)
            .map_err(|e| format!("cannot make the directory {}: {e}", p.display())),
        _ => Ok(()),
    }
}

/// Moves a finished temporary file into place after checking what arrived against `expect`
/// (`(size, blake3)` when known); a mismatch removes it.
fn settle(
    tmp: &Path,
    dest: &Path,
    expect: Option<(Option<u64>, Option<&str>)>,
    strategy: &'static str,
    hashed: Option<(u64, String)>,
) -> Result<Moved, String> {
    let fail = |msg: String| {
        let _ = std::fs::remove_file(tmp);
        Err(msg)
    };
    let (bytes, digest) = match hashed {
        Some(h) => h,
        None => match hash_file(tmp) {
            Ok(h) => h,
            Err(e) => return fail(format!("cannot read what arrived ({}): {e}", tmp.display())),
        },
    };
    if let Some((size, blake3)) = expect {
        if let Some(want) = size
            && want != bytes
        {
            return fail(format!(
                "{bytes} bytes arrived where {want} were expected: the transfer was cut short or the source changed since it was named"
            ));
        }
        if let Some(want) = blake3
            && want != digest
        {
            return fail(format!(
                "checksum mismatch: BLAKE3 {digest} arrived where {want} was expected (the source changed since it was named, or the copy was garbled)"
            ));
        }
    }
    if let Err(e) = std::fs::rename(tmp, dest) {
        return fail(format!(
            "cannot put the file in place at {}: {e}",
            dest.display()
        ));
    }
    Ok(Moved {
        bytes,
        blake3: digest,
        strategy,
    })
}

/// Writes what `from` reads to the new file `to`, hashing it on the way, and syncs it:
/// `(bytes, BLAKE3 hex)`.
fn write_hashed(from: &mut impl Read, to: &Path) -> std::io::Result<(u64, String)> {
    let mut out = std::fs::File::create(to)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = from.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k])?;
        n += k as u64;
    }
    out.sync_data()?;
    Ok((n, h.finalize().to_hex().to_string()))
}

/// Copies a local file to `dest` (made whole or not at all). `link`: a hard link where the
/// file system allows one and the source is read-only (a writable source is copied, so that a
/// task writing to its copy never changes the original).
pub(crate) fn copy_local(
    src: &Path,
    dest: &Path,
    expect: Option<(Option<u64>, Option<&str>)>,
) -> Result<Moved, String> {
    let meta = std::fs::metadata(src).map_err(|e| missing(&src.display().to_string(), e))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (transfers move single files; stage a directory's files one by one or archive it)",
            src.display()
        ));
    }
    make_parent(dest)?;
    let tmp = part_path(dest);
    let read_only = meta.permissions().readonly();
    if read_only && std::fs::hard_link(src, &tmp).is_ok() {
        return settle(&tmp, dest, expect, "hardlink", None);
    }
    // Copied and hashed in one pass.
    let copied = std::fs::File::open(src).and_then(|mut from| write_hashed(&mut from, &tmp));
    match copied {
        Ok(h) => settle(&tmp, dest, expect, "copy", Some(h)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(refused(&dest.display().to_string(), e))
        }
    }
}

fn missing(what: &str, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("the source {what} does not exist"),
        std::io::ErrorKind::PermissionDenied => {
            format!("the source {what} cannot be read (permission denied)")
        }
        _ => format!("the source {what} cannot be read: {e}"),
    }
}

fn refused(what: &str, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "the destination {what} cannot be written (permission denied): pick a directory you can write to"
        ),
        _ => format!("writing {what} failed: {e}"),
    }
}

/// Brings the file at `from` to the local path `dest`.
pub(crate) fn fetch(
    from: &Location,
    dest: &Path,
    expect: Option<(Option<u64>, Option<&str>)>,
) -> Result<Moved, String> {
    match from {
        Location::Local(p) => copy_local(p, dest, expect),
        Location::Ssh(s) => ssh_pull(s, dest, expect),
        Location::Http(u) => http_get(u, dest, expect),
    }
}

/// Sends the local file `src` to `to`.
pub(crate) fn deliver(src: &Path, to: &Location) -> Result<Moved, String> {
    match to {
        Location::Local(p) => copy_local(src, p, None),
        Location::Ssh(s) => ssh_push(src, s),
        Location::Http(u) => Err(format!(
            "{u}: HTTP transfers are downloads; send results to a file:// or ssh:// destination"
        )),
    }
}

/// Whether `rsync` runs on this machine (checked once).
pub fn rsync_here() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        Command::new("rsync")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether rsync's failure says it is missing on the other side.
pub fn rsync_missing_there(code: Option<i32>, stderr: &str) -> bool {
    code == Some(127)
        || stderr.contains("rsync: command not found")
        || stderr.contains("rsync: not found")
        || (stderr.contains("rsync")
            && stderr.contains("No such file or directory")
            && stderr.contains("exec"))
}

/// `ssh` options for a direct transfer from where the task runs (the user's own ssh config
/// and keys; never a password prompt).
fn ssh_opts(s: &SshPath) -> Vec<String> {
    let mut o = vec![
        "-o".to_string(),
        "BatchMode=yes".to_string(),
        "-o".to_string(),
        "ConnectTimeout=30".to_string(),
    ];
    if let Some(p) = s.port {
        o.push("-o".into());
        o.push(format!("Port={p}"));
    }
    o
}

fn run(cmd: &mut Command) -> Result<(Option<i32>, String), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok((None, String::new()))
    } else {
        Ok((
            out.status.code().or(Some(-1)),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn ssh_pull(
    s: &SshPath,
    dest: &Path,
    expect: Option<(Option<u64>, Option<&str>)>,
) -> Result<Moved, String> {
    make_parent(dest)?;
    let tmp = part_path(dest);
    let remote = format!("{}:{}", s.target(), s.path);
    let opts = ssh_opts(s);
    let mut strategy = "scp";
    let mut why = String::new();
    if rsync_here() {
        let (code, err) = run(Command::new("rsync")
            .arg("-t")
            .arg("-e")
            .arg(format!("ssh {}", opts.join(" ")))
            .arg(&remote)
            .arg(&tmp))?;
        match code {
            None => return settle(&tmp, dest, expect, "rsync", None),
            Some(c) if !rsync_missing_there(Some(c), &err) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(ssh_failed("rsync", &remote, &err));
            }
            _ => why = " (rsync is missing there)".into(),
        }
        strategy = "scp";
    }
    let (code, err) = run(Command::new("scp")
        .arg("-B")
        .arg("-q")
        .args(&opts)
        .arg(&remote)
        .arg(&tmp))?;
    if code.is_some() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ssh_failed(&format!("scp{why}"), &remote, &err));
    }
    settle(&tmp, dest, expect, strategy, None)
}

fn ssh_push(src: &Path, s: &SshPath) -> Result<Moved, String> {
    let (bytes, digest) = hash_file(src).map_err(|e| missing(&src.display().to_string(), e))?;
    let target = s.target();
    let opts = ssh_opts(s);
    let (dir, name) = match s.path.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => (".", s.path.as_str()),
    };
    let part = format!(
        "{dir}/.{name}.covalent-{}.part",
        uuid::Uuid::now_v7().simple()
    );
    let q = shell_quote;
    let ssh = |script: String| {
        run(Command::new("ssh")
            .args(&opts)
            .arg("--")
            .arg(&target)
            .arg(script))
    };
    let (code, err) = ssh(format!("mkdir -p {}", q(dir)))?;
    if code.is_some() {
        return Err(ssh_failed("ssh mkdir", &format!("{target}:{dir}"), &err));
    }
    let mut strategy = "scp";
    let mut sent = false;
    if rsync_here() {
        let (code, err) = run(Command::new("rsync")
            .arg("-t")
            .arg("-e")
            .arg(format!("ssh {}", opts.join(" ")))
            .arg(src)
            .arg(format!("{target}:{part}")))?;
        match code {
            None => {
                sent = true;
                strategy = "rsync";
            }
            Some(c) if !rsync_missing_there(Some(c), &err) => {
                return Err(ssh_failed("rsync", &format!("{target}:{}", s.path), &err));
            }
            _ => {}
        }
    }
    if !sent {
        let (code, err) = run(Command::new("scp")
            .arg("-B")
            .arg("-q")
            .args(&opts)
            .arg(src)
            .arg(format!("{target}:{part}")))?;
        if code.is_some() {
            let _ = ssh(format!("rm -f {}", q(&part)));
            return Err(ssh_failed("scp", &format!("{target}:{}", s.path), &err));
        }
    }
    let (code, err) = ssh(format!("mv -f {} {}", q(&part), q(&s.path)))?;
    if code.is_some() {
        let _ = ssh(format!("rm -f {}", q(&part)));
        return Err(ssh_failed("ssh mv", &format!("{target}:{}", s.path), &err));
    }
    Ok(Moved {
        bytes,
        blake3: digest,
        strategy,
    })
}

fn ssh_failed(how: &str, what: &str, stderr: &str) -> String {
    let hint = if stderr.contains("No such file") {
        " (the file is not there)"
    } else if stderr.contains("Permission denied") {
        " (permission denied: check the key this host uses to log in there, or the destination's rights)"
    } else if stderr.contains("Could not resolve") || stderr.contains("Connection refused") {
        " (the host cannot be reached from where the task runs: stage the file through the dispatcher instead, from a local path)"
    } else {
        ""
    };
    format!("{how} {what} failed{hint}: {stderr}")
}

#[cfg(feature = "http")]
fn http_get(
    url: &str,
    dest: &Path,
    expect: Option<(Option<u64>, Option<&str>)>,
) -> Result<Moved, String> {
    use std::time::Duration;
    make_parent(dest)?;
    let config = ureq::config::Config::builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("downloading {url} failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            404 | 410 => " (no such file there)",
            401 | 403 => " (the server refuses: does the URL need credentials?)",
            _ => "",
        };
        return Err(format!("downloading {url} failed: HTTP {status}{hint}"));
    }
    let announced = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let tmp = part_path(dest);
    let got = write_hashed(&mut resp.body_mut().as_reader(), &tmp);
    let (n, digest) = match got {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "downloading {url} failed part-way (nothing was kept): {e}"
            ));
        }
    };
    if let Some(len) = announced
        && len != n
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "downloading {url} was cut short: {n} of {len} bytes arrived (nothing was kept)"
        ));
    }
    settle(&tmp, dest, expect, "http", Some((n, digest)))
}

#[cfg(not(feature = "http"))]
fn http_get(
    url: &str,
    _dest: &Path,
    _expect: Option<(Option<u64>, Option<&str>)>,
) -> Result<Moved, String> {
    Err(format!(
        "{url}: this build of covalent has no HTTP client (enable the `http` feature)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_copy_arrives_whole_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a.csv");
        std::fs::write(&src, b"x,y\n1,2\n").unwrap();
        let (n, h) = hash_file(&src).unwrap();
        let dest = d.path().join("deep/er/b.csv");
        let m = copy_local(&src, &dest, Some((Some(n), Some(&h)))).unwrap();
        assert_eq!(
            (m.bytes, m.blake3.as_str(), m.strategy),
            (n, h.as_str(), "copy")
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"x,y\n1,2\n");

        // A wrong digest: refused, and nothing left at the destination or beside it.
        let dest2 = d.path().join("c.csv");
        let e = copy_local(&src, &dest2, Some((None, Some("00")))).unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
        assert!(!dest2.exists());
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // A read-only source is hard-linked.
        let mut p = std::fs::metadata(&src).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&src, p).unwrap();
        let m = copy_local(&src, &d.path().join("linked.csv"), None).unwrap();
        assert_eq!(m.strategy, "hardlink");

        let e = copy_local(&d.path().join("nope"), &dest, None).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }
}
