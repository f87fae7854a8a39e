//! How to reach a host over SSH: [`SshOptions`], with the names of Covalent's SSH plugin and of
//! OpenSSH, the Slurm executor's old names as deprecated aliases (warned about once on
//! stderr), and unknown keys rejected with the list of known ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// How to reach a host over SSH: the `[executors.ssh]` keys of the `ssh` executor, and the
/// `ssh = { ... }` table of the `slurm` executor.
///
/// | option | default | meaning |
/// |---|---|---|
/// | `hostname` | (required) | host name, address, or a `Host` alias of your ssh config |
/// | `username` | ssh's | remote user (`-l`) |
/// | `port` | ssh's | remote port (`-p`) |
/// | `ssh_key_file` | ssh's | private key (`-i`, with `IdentitiesOnly=yes`) |
/// | `ssh_config` | ssh's | an ssh config file (`-F`) |
/// | `known_hosts` | ssh's | a known-hosts file (`UserKnownHostsFile`) |
/// | `strict_host_key_checking` | `true` | refuse unknown or changed host keys; `false` accepts the key of a host seen for the first time and still refuses changed ones (`accept-new`) |
/// | `connect_timeout` | `10s` | time to establish a connection (`"30s"` or a number of seconds) |
/// | `options` | `[]` | more `-o` options, e.g. `"ProxyJump=bastion"` (they cannot override the ones covalent sets) |
/// | `max_sessions` | `8` | sessions open at once on the shared connection (keep it below the server's `MaxSessions`, 10 by default); more commands wait their turn |
/// | `control_path` | ours | use your own `ControlMaster` socket (as in your ssh config's `ControlPath`, `%` tokens and `~` as ssh reads them) instead of one of ours: log in once yourself (multi-factor included) and every task rides on that connection |
///
/// `~/` at the start of a path is the local home. Deprecated aliases, the first names of the
/// `slurm` executor's `ssh` table (each still works there, with a warning on stderr the first
/// time it is used): `host` for `hostname`, `user` for `username`, `key` for `ssh_key_file`.
/// The `ssh` executor always had the names above, and its table rejects the aliases as unknown
/// keys (the runtime checks its top-level keys against the ones the executor writes back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshOptions {
    /// Host name, address, or a `Host` alias of your ssh config.
    pub hostname: String,
    /// Remote user (default: ssh's).
    pub username: Option<String>,
    /// Port (default: ssh's).
    pub port: Option<u16>,
    /// Private key file (`-i`, with `IdentitiesOnly=yes`).
    pub ssh_key_file: Option<PathBuf>,
    /// An ssh config file (`-F`).
    pub ssh_config: Option<PathBuf>,
    /// A known-hosts file (`UserKnownHostsFile`).
    pub known_hosts: Option<PathBuf>,
    /// Refuse unknown or changed host keys (`StrictHostKeyChecking=yes`, the default); `false`
    /// is `accept-new`.
    pub strict_host_key_checking: bool,
    /// Time to establish a connection.
    #[serde(with = "covalent::executor::serde_duration")]
    pub connect_timeout: Duration,
    /// Extra `-o` options, e.g. `"ProxyJump=bastion"`.
    pub options: Vec<String>,
    /// Sessions open at once on the shared connection (below the server's `MaxSessions`).
    pub max_sessions: u32,
    /// Your own `ControlMaster` socket to ride on, instead of a connection of ours.
    pub control_path: Option<String>,
    /// The rsync program on the host, for file transfers (default: `rsync` on its `PATH`);
    /// when it is missing there (or here), transfers fall back to scp.
    pub rsync_path: Option<String>,
}

/// Sessions at once on one connection by default: OpenSSH's `MaxSessions` is 10, and a
/// master connection's own session counts.
pub const DEFAULT_MAX_SESSIONS: u32 = 8;

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            hostname: String::new(),
            username: None,
            port: None,
            ssh_key_file: None,
            ssh_config: None,
            known_hosts: None,
            strict_host_key_checking: true,
            connect_timeout: Duration::from_secs(10),
            options: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            control_path: None,
            rsync_path: None,
        }
    }
}

impl SshOptions {
    /// The options for `hostname`, everything else by default.
    pub fn new(hostname: impl Into<String>) -> Self {
        SshOptions {
            hostname: hostname.into(),
            ..Default::default()
        }
    }

    /// `user@host:port` (the parts that are set), for messages.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.username {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.hostname);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }

    /// A short hash of everything that identifies a connection (all but `connect_timeout`):
    /// another key or known-hosts file must not ride on a connection authenticated otherwise.
    pub(crate) fn connection_key(&self) -> String {
        let identity = SshOptions {
            connect_timeout: Duration::ZERO,
            max_sessions: 0,
            rsync_path: None,
            ..self.clone()
        };
        let text = serde_json::to_string(&identity).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
    }
}

/// `~/...` under the local home; other paths as they are.
pub(crate) fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// Every key a table may hold: the option names, in the order of the table above, then the
/// deprecated names of [`ALIASES`]. Handed to serde, which (when the options are flattened
/// into an executor's own table) passes on only these keys.
const KEYS: &[&str] = &[
    "hostname",
    "username",
    "port",
    "ssh_key_file",
    "ssh_config",
    "known_hosts",
    "strict_host_key_checking",
    "connect_timeout",
    "options",
    "max_sessions",
    "control_path",
    "rsync_path",
    "host",
    "user",
    "key",
];

/// The option names: [`KEYS`] without the deprecated ones.
const NAMES: &[&str] = KEYS.split_at(KEYS.len() - ALIASES.len()).0;

/// Deprecated names and the names that replaced them.
pub const ALIASES: &[(&str, &str)] = &[
    ("host", "hostname"),
    ("user", "username"),
    ("key", "ssh_key_file"),
];

/// The option a key names, and the alias when it is a deprecated one.
fn canonical(key: &str) -> Option<(&'static str, Option<&'static str>)> {
    if let Some(name) = NAMES.iter().find(|n| **n == key) {
        return Some((name, None));
    }
    ALIASES
        .iter()
        .find(|(old, _)| *old == key)
        .map(|(old, new)| (*new, Some(*old)))
}

/// Whether `old` is used for the first time in this process (then the warning is printed).
fn first_use(old: &'static str) -> bool {
    static WARNED: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&old) {
        return false;
    }
    warned.push(old);
    true
}

fn warn_deprecated(old: &'static str, new: &'static str) {
    if first_use(old) {
        eprintln!("covalent: warning: the ssh option `{old}` is deprecated, use `{new}`");
    }
}

/// A duration as `covalent::executor::serde_duration` reads it.
#[derive(Deserialize)]
#[serde(transparent)]
struct Dur(#[serde(with = "covalent::executor::serde_duration")] Duration);

impl<'de> Deserialize<'de> for SshOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("SshOptions", KEYS, OptionsVisitor)
    }
}

struct OptionsVisitor;

impl<'de> Visitor<'de> for OptionsVisitor {
    type Value = SshOptions;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of ssh options (hostname, username, port, ...)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SshOptions, A::Error> {
        let mut o = SshOptions::default();
        let mut given: Vec<(&'static str, String)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let Some((name, alias)) = canonical(&key) else {
                return Err(de::Error::custom(format!(
                    "unknown ssh option `{key}`; expected one of: {}",
                    NAMES.join(", ")
                )));
            };
            if let Some((_, first)) = given.iter().find(|(n, _)| *n == name) {
                return Err(de::Error::custom(if *first == key {
                    format!("ssh option `{key}` is given twice")
                } else {
                    format!(
                        "`{first}` and `{key}` are the same ssh option (`{}` is its deprecated name): keep only `{name}`",
                        alias.unwrap_or(first)
                    )
                }));
            }
            given.push((name, key.clone()));
            if let Some(old) = alias {
                warn_deprecated(old, name);
            }
            match name {
                "hostname" => o.hostname = map.next_value()?,
                "username" => o.username = map.next_value()?,
                "port" => o.port = map.next_value()?,
                "ssh_key_file" => o.ssh_key_file = map.next_value()?,
                "ssh_config" => o.ssh_config = map.next_value()?,
                "known_hosts" => o.known_hosts = map.next_value()?,
                "strict_host_key_checking" => o.strict_host_key_checking = map.next_value()?,
                "connect_timeout" => o.connect_timeout = map.next_value::<Dur>()?.0,
                "max_sessions" => {
                    o.max_sessions = map.next_value()?;
                    if o.max_sessions == 0 {
                        return Err(de::Error::custom(
                            "ssh option `max_sessions` must be at least 1",
                        ));
                    }
                }
                "control_path" => o.control_path = map.next_value()?,
                "rsync_path" => o.rsync_path = map.next_value()?,
                _ => o.options = map.next_value()?,
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<SshOptions, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn the_names_parse_and_round_trip() {
        let o = parse(serde_json::json!({
            "hostname": "login", "username": "me", "port": 2222,
            "ssh_key_file": "~/.ssh/id_ed25519", "ssh_config": "cfg", "known_hosts": "kh",
            "strict_host_key_checking": false, "connect_timeout": "30s",
            "options": ["ProxyJump=bastion"], "max_sessions": 4,
            "control_path": "~/.ssh/cm-%C",
        }))
        .unwrap();
        assert_eq!(o.max_sessions, 4);
        assert_eq!(o.control_path.as_deref(), Some("~/.ssh/cm-%C"));
        assert_eq!(o.hostname, "login");
        assert_eq!(o.username.as_deref(), Some("me"));
        assert_eq!(o.port, Some(2222));
        assert_eq!(o.ssh_key_file, Some(PathBuf::from("~/.ssh/id_ed25519")));
        assert_eq!(o.ssh_config, Some(PathBuf::from("cfg")));
        assert_eq!(o.known_hosts, Some(PathBuf::from("kh")));
        assert!(!o.strict_host_key_checking);
        assert_eq!(o.connect_timeout, Duration::from_secs(30));
        assert_eq!(o.options, ["ProxyJump=bastion"]);
        assert_eq!(o.label(), "me@login:2222");
        let again = parse(serde_json::to_value(&o).unwrap()).unwrap();
        assert_eq!(again, o);
    }

    #[test]
    fn defaults_are_strict_with_a_ten_second_connect() {
        let o = parse(serde_json::json!({ "hostname": "h" })).unwrap();
        assert_eq!(o, SshOptions::new("h"));
        assert!(o.strict_host_key_checking);
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        // A number is seconds, as the ssh executor's `connect_timeout = 10` always was.
        let o = parse(serde_json::json!({ "hostname": "h", "connect_timeout": 5 })).unwrap();
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_old_names_are_aliases() {
        let toml_text = r#"host = "login.cluster.example"
user = "me"
key = "~/.ssh/id_ed25519"
port = 22
"#;
        let o: SshOptions = toml::from_str(toml_text).unwrap();
        assert_eq!(o.hostname, "login.cluster.example");
        assert_eq!(o.username.as_deref(), Some("me"));
        assert_eq!(o.ssh_key_file, Some(PathBuf::from("~/.ssh/id_ed25519")));
        // Written back with the new names only.
        let v = serde_json::to_value(&o).unwrap();
        assert!(
            v.get("hostname").is_some() && v.get("host").is_none(),
            "{v}"
        );
        // The deprecated names are exactly the tail of KEYS, so NAMES holds no alias.
        let tail = &KEYS[NAMES.len()..];
        for (old, new) in ALIASES {
            assert!(NAMES.contains(new) && tail.contains(old) && !NAMES.contains(old));
        }
        assert_eq!(tail.len(), ALIASES.len());
    }

    #[test]
    fn a_deprecated_name_is_warned_about_once() {
        // A name no table uses, so the other tests' parsing does not interfere.
        assert!(first_use("test-only-alias"));
        assert!(!first_use("test-only-alias"));
    }

    #[test]
    fn unknown_and_doubled_keys_are_rejected() {
        let e = parse(serde_json::json!({ "hostname": "h", "hots": "x" })).unwrap_err();
        assert!(e.contains("unknown ssh option `hots`"), "{e}");
        assert!(e.contains("hostname, username, port, ssh_key_file"), "{e}");
        let e = parse(serde_json::json!({ "host": "a", "hostname": "b" })).unwrap_err();
        assert!(
            e.contains("`host` and `hostname` are the same ssh option")
                && e.contains("keep only `hostname`"),
            "{e}"
        );
        let e = toml::from_str::<SshOptions>("port = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        let e = parse(serde_json::json!({ "connect_timeout": "soon" })).unwrap_err();
        assert!(e.contains("malformed duration"), "{e}");
    }

    /// Flattened into an executor's table, the options take their keys (aliases included) and
    /// leave the others to the executor.
    #[test]
    fn flattened_options_take_only_their_keys() {
        #[derive(Deserialize)]
        struct Executor {
            #[serde(flatten)]
            ssh: SshOptions,
            remote_cache: String,
        }
        let e: Executor = serde_json::from_value(serde_json::json!({
            "hostname": "h", "user": "me", "remote_cache": ".cache",
        }))
        .unwrap();
        assert_eq!(e.ssh.hostname, "h");
        assert_eq!(e.ssh.username.as_deref(), Some("me"));
        assert_eq!(e.remote_cache, ".cache");
    }

    #[test]
    fn the_connection_key_follows_the_identity_not_the_timeout() {
        let a = SshOptions::new("h");
        let b = SshOptions {
            connect_timeout: Duration::from_secs(99),
            ..a.clone()
        };
        let c = SshOptions {
            ssh_key_file: Some("k".into()),
            ..a.clone()
        };
        assert_eq!(a.connection_key(), b.connection_key());
        assert_ne!(a.connection_key(), c.connection_key());
        assert_eq!(a.connection_key().len(), 16);
    }

    #[test]
    fn home_is_expanded() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            expand_home(Path::new("~/.ssh/k")),
            Path::new(&home).join(".ssh/k")
        );
        assert_eq!(expand_home(Path::new("/k")), Path::new("/k"));
        assert_eq!(expand_home(Path::new("a~/k")), Path::new("a~/k"));
    }
}
