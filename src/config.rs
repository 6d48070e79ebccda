//! Settings: the flags of `serve`, their environment variables and the config file.
//!
//! Every setting is declared once in the `settings!` table below, which generates the
//! `serve` flags (each with an `ALONGSIDE_*` environment variable), the TOML file shape
//! and the merge. Precedence: flag > environment > config file > built-in default.
//! [`Config`] is the plain value the server runs with; tests build it directly.

use clap::Args;
use serde::Deserialize;
use std::time::Duration;

/// Who may register an account (PROTOCOL §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// With an invite code.
    Invite,
    /// Nobody: accounts are made with `alongside user create`.
    Closed,
}

impl Registration {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

/// How the log is written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event, for a person.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

impl LogFormat {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr, env = $env:literal; )*) => {
        /// Flags of `alongside serve`; each also reads its environment variable.
        #[derive(Debug, Clone, Default, Args)]
        pub struct ServeArgs {
            /// A TOML file with any of the settings below (flags and environment win).
            #[arg(long, env = "ALONGSIDE_CONFIG", value_name = "FILE")]
            pub config: Option<std::path::PathBuf>,
            /// Address to listen on [default: 127.0.0.1:8080].
            #[arg(long, env = "ALONGSIDE_LISTEN", value_name = "ADDR")]
            pub listen: Option<String>,
            /// Database URL [default: sqlite://alongside.db].
            #[arg(long, env = "ALONGSIDE_DATABASE", value_name = "URL")]
            pub database: Option<String>,
            /// A browser origin allowed to open /ws (repeat, or comma-separate in the
            /// environment). Without one, only the server's own origin is allowed.
            #[arg(long = "allowed-origin", env = "ALONGSIDE_ALLOWED_ORIGIN", value_name = "ORIGIN", value_delimiter = ',')]
            pub allowed_origins: Vec<String>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env)]
                pub $field: Option<$ty>,
            )*
        }

        /// The config file: every key optional, unknown keys refused.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileSettings {
            /// See `ServeArgs::listen`.
            pub listen: Option<String>,
            /// See `ServeArgs::database`.
            pub database: Option<String>,
            /// See `ServeArgs::allowed_origins`.
            pub allowed_origins: Option<Vec<String>>,
            $(
                $(#[doc = $doc])*
                pub $field: Option<$ty>,
            )*
        }

        /// Everything the server runs with.
        #[derive(Debug, Clone)]
        pub struct Config {
            /// Address to listen on.
            pub listen: String,
            /// Database URL.
            pub database: String,
            /// Browser origins allowed to open /ws; empty = the server's own origin only.
            pub allowed_origins: Vec<String>,
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    listen: "127.0.0.1:8080".into(),
                    database: "sqlite://alongside.db".into(),
                    allowed_origins: Vec::new(),
                    $( $field: $default, )*
                }
            }
        }

        /// Every setting: its name (the file key; the flag is `--name-with-dashes`), its
        /// environment variable and its documentation, in the order of the table.
        pub const SETTINGS: &[SettingInfo] = &[
            SettingInfo { name: "listen", env: "ALONGSIDE_LISTEN", doc: "Address to listen on." },
            SettingInfo { name: "database", env: "ALONGSIDE_DATABASE", doc: "Database URL: `sqlite://PATH` (the default, one file) or `postgres://USER@HOST/NAME` (for several nodes; docs/scaling.md)." },
            SettingInfo { name: "allowed_origins", env: "ALONGSIDE_ALLOWED_ORIGIN", doc: "Browser origins allowed to open /ws (repeat the flag, or comma-separate in the environment; a list in the file). Without one, only the server's own origin is allowed." },
            $( SettingInfo { name: stringify!($field), env: $env, doc: concat!($($doc, "\n"),*) }, )*
        ];

        impl FileSettings {
            /// Whether the file sets `name`.
            pub fn has(&self, name: &str) -> bool {
                match name {
                    "listen" => self.listen.is_some(),
                    "database" => self.database.is_some(),
                    "allowed_origins" => self.allowed_origins.is_some(),
                    $( stringify!($field) => self.$field.is_some(), )*
                    _ => false,
                }
            }
        }

        impl Config {
            /// `name`'s value as it would be written in the config file; secrets are
            /// hidden and URLs lose their passwords.
            pub fn shown(&self, name: &str) -> Option<String> {
                Some(match name {
                    "listen" => self.listen.show(),
                    "database" => crate::store::redacted(&self.database).show(),
                    "bus" => crate::store::redacted(&self.bus).show(),
                    "metrics_token" if !self.metrics_token.is_empty() => "(set; not shown)".into(),
                    "allowed_origins" => self.allowed_origins.show(),
                    $( stringify!($field) => self.$field.show(), )*
                    _ => return None,
                })
            }

            /// Merges flags/environment over the file over the defaults.
            pub fn merge(args: ServeArgs, file: FileSettings) -> Config {
                let default = Config::default();
                Config {
                    listen: args.listen.or(file.listen).unwrap_or(default.listen),
                    database: args.database.or(file.database).unwrap_or(default.database),
                    allowed_origins: if args.allowed_origins.is_empty() {
                        file.allowed_origins.unwrap_or(default.allowed_origins)
                    } else {
                        args.allowed_origins
                    },
                    $( $field: args.$field.or(file.$field).unwrap_or(default.$field), )*
                }
            }
        }
    };
}

settings! {
    /// Largest WebSocket frame accepted, in bytes; larger closes the socket with 1009.
    max_frame_bytes: usize = 64 * 1024, env = "ALONGSIDE_MAX_FRAME_BYTES";
    /// Seconds a new socket has to authenticate before it is closed with 4001.
    auth_timeout_s: f64 = 10.0, env = "ALONGSIDE_AUTH_TIMEOUT_S";
    /// Seconds between pings to a socket; one silent for two whole intervals (checked
    /// once per interval) is dropped.
    ping_interval_s: f64 = 30.0, env = "ALONGSIDE_PING_INTERVAL_S";
    /// Shortest time between two writes to one busy socket, in milliseconds: frames that
    /// arrive sooner wait and share the next write (0 = write at once). A socket that
    /// was quiet, and any reply, is always written at once. 25 ms is well under what a
    /// reader notices, and in a busy room one `write` then carries several events: the
    /// write per frame is what a delivery costs (docs/performance.md).
    write_coalesce_ms: u64 = 25, env = "ALONGSIDE_WRITE_COALESCE_MS";
    /// Members on this node from which a room's events are written to each quiet socket
    /// by the thread that dispatches them, instead of waking the socket's task
    /// (0 = never; 1 = every room). It spares a wake-up per recipient but writes the
    /// whole fan-out on one thread: a gain for one event to many sockets, a loss for
    /// many small rooms, whose sockets' tasks share the cores (docs/performance.md).
    write_at_once_from: usize = 1000, env = "ALONGSIDE_WRITE_AT_ONCE_FROM";
    /// Frames queued per socket before it counts as a slow consumer (closed with 4008).
    outbox_frames: usize = 1024, env = "ALONGSIDE_OUTBOX_FRAMES";
    /// Bytes queued per socket before it counts as a slow consumer (closed with 4008).
    outbox_bytes: usize = 4 * 1024 * 1024, env = "ALONGSIDE_OUTBOX_BYTES";
    /// Requests per second one socket may make on average; 0 turns the limit off.
    request_rate_per_s: f64 = 20.0, env = "ALONGSIDE_REQUEST_RATE_PER_S";
    /// Requests one socket may make in a burst above the average rate.
    request_burst: u32 = 40, env = "ALONGSIDE_REQUEST_BURST";
    /// The emoji members may react with, separated by spaces.
    reactions: String = "💙 🙏 🤗 👍 🌱".into(), env = "ALONGSIDE_REACTIONS";
    /// Let members (not only moderators) create topic rooms.
    members_may_create_rooms: bool = false, env = "ALONGSIDE_MEMBERS_MAY_CREATE_ROOMS";
    /// Who may register: `open` (anyone), `invite` (with a code from `alongside invite
    /// create` or a global moderator) or `closed` (accounts only by `alongside user create`).
    registration: Registration = Registration::Open, env = "ALONGSIDE_REGISTRATION";
    /// Failed logins to one account from one client address per window, after which
    /// that address (only) is refused for that account until the window ends; a
    /// successful login clears the count (0 = unlimited). Nobody can lock a member out
    /// from elsewhere: across addresses, failures only slow the account's logins down.
    login_failures_per_account_address: u32 = 10, env = "ALONGSIDE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS";
    /// Login attempts per client address per window, any account (0 = unlimited).
    login_attempts_per_address: u32 = 30, env = "ALONGSIDE_LOGIN_ATTEMPTS_PER_ADDRESS";
    /// Length of the login windows, in seconds.
    login_window_s: u64 = 300, env = "ALONGSIDE_LOGIN_WINDOW_S";
    /// The first delay, in milliseconds, added to every login of an account that has
    /// failed more than five times in the window from anywhere; it doubles with each
    /// further failure, up to five seconds (0 = no delay).
    login_slowdown_ms: u64 = 250, env = "ALONGSIDE_LOGIN_SLOWDOWN_MS";
    /// Registrations per client address per hour (0 = unlimited).
    registrations_per_address: u32 = 20, env = "ALONGSIDE_REGISTRATIONS_PER_ADDRESS";
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the client, comma
    /// separated, addresses or networks (`127.0.0.1, 10.0.0.0/8`); empty = none, the
    /// TCP peer is the client.
    trusted_proxies: String = String::new(), env = "ALONGSIDE_TRUSTED_PROXIES";
    /// Milliseconds a member may be gone before the room hears they left
    /// (`member_left`, disconnected); back within it, nobody hears anything. A flaky
    /// connection then does not flood the room with presence (0 = at once).
    presence_grace_ms: u64 = 5000, env = "ALONGSIDE_PRESENCE_GRACE_MS";
    /// Seconds a client has to send a request's headers, and to start its next request
    /// on a kept-alive connection; slower connections are closed.
    header_read_timeout_s: f64 = 10.0, env = "ALONGSIDE_HEADER_READ_TIMEOUT_S";
    /// HTTP connections open at once, whatever their addresses (0 = unlimited); a
    /// WebSocket leaves this count when it upgrades (`max_sockets` counts it then).
    max_connections: u32 = 25_000, env = "ALONGSIDE_MAX_CONNECTIONS";
    /// HTTP connections open at once from one client address (0 = unlimited; trusted
    /// proxies are exempt).
    max_connections_per_address: u32 = 256, env = "ALONGSIDE_MAX_CONNECTIONS_PER_ADDRESS";
    /// Open WebSockets on this server in all, whatever their addresses (0 = unlimited).
    max_sockets: u32 = 20_000, env = "ALONGSIDE_MAX_SOCKETS";
    /// New accounts per hour on this server in all, whatever their addresses (0 =
    /// unlimited).
    registrations_per_hour: u32 = 500, env = "ALONGSIDE_REGISTRATIONS_PER_HOUR";
    /// Open WebSockets per client address (0 = unlimited).
    max_sockets_per_address: u32 = 64, env = "ALONGSIDE_MAX_SOCKETS_PER_ADDRESS";
    /// Authenticated WebSockets per account, across addresses (0 = unlimited).
    max_sockets_per_account: u32 = 10, env = "ALONGSIDE_MAX_SOCKETS_PER_ACCOUNT";
    /// Threads that hash passwords, at the lowest CPU priority. One keeps up with about
    /// 60 logins a second; more make a login storm compete with chat for the CPU caches.
    hash_concurrency: usize = 1, env = "ALONGSIDE_HASH_CONCURRENCY";
    /// Seconds a graceful shutdown waits for sockets to close and writes to finish.
    shutdown_grace_s: f64 = 10.0, env = "ALONGSIDE_SHUTDOWN_GRACE_S";
    /// Seconds a login token lives unused before it expires (0 = until logout).
    token_idle_s: u64 = 30 * 24 * 3600, env = "ALONGSIDE_TOKEN_IDLE_S";
    /// Seconds a login token lives at most, used or not (0 = until logout).
    token_lifetime_s: u64 = 90 * 24 * 3600, env = "ALONGSIDE_TOKEN_LIFETIME_S";
    /// A secret that `/metrics` then requires as `Authorization: Bearer SECRET`; empty
    /// leaves `/metrics` open (bind the server to a private address then).
    metrics_token: String = String::new(), env = "ALONGSIDE_METRICS_TOKEN";
    /// This node's name in `/healthz` and the logs, to tell nodes of a cluster apart
    /// (letters, digits, `.`, `_`, `-`; default: the host name and the process id).
    node_id: String = String::new(), env = "ALONGSIDE_NODE_ID";
    /// The bus between nodes: `redis://HOST:PORT` for several nodes on one database
    /// (every node of a network names the same Redis and `cluster`); empty = this node
    /// alone, in-process.
    bus: String = String::new(), env = "ALONGSIDE_BUS";
    /// The network's name on the bus: nodes with the same `bus` and `cluster` serve one
    /// network (two networks may share one Redis under different names).
    cluster: String = "alongside".into(), env = "ALONGSIDE_CLUSTER";
    /// Where quick exit takes a member: a page that looks ordinary on a shared screen
    /// (an `https://` address; say, the local weather or news in the members' language).
    quick_exit_url: String = "https://www.bbc.co.uk/weather".into(), env = "ALONGSIDE_QUICK_EXIT_URL";
    /// Seconds a host stays on duty after their last socket closes (a dropped
    /// connection is not a shift ending); then they go off duty and the room hears it.
    host_grace_s: f64 = 60.0, env = "ALONGSIDE_HOST_GRACE_S";
    /// Seconds a node's presence lasts on the other nodes unless renewed (it renews
    /// four times as often): a node that dies stops counting its members within this
    /// time and one renewal.
    presence_ttl_s: f64 = 10.0, env = "ALONGSIDE_PRESENCE_TTL_S";
    /// A directory of crisis-phrase lists (`*.txt`, one phrase per line) to use instead
    /// of the built-in ones (`data/care/phrases`); empty = built-in.
    care_phrases_dir: String = String::new(), env = "ALONGSIDE_CARE_PHRASES_DIR";
    /// A support-resource file (TOML, as `data/care/resources.toml`) to use instead of the
    /// built-in one; empty = built-in.
    care_resources_file: String = String::new(), env = "ALONGSIDE_CARE_RESOURCES_FILE";
    /// A PEM certificate chain (the server's certificate first). With `tls_key`, the
    /// server speaks HTTPS and WSS itself on `listen`; empty = plain HTTP (behind a
    /// proxy that terminates TLS, say). Both files are read again on SIGHUP: a renewed
    /// certificate takes effect without closing a socket.
    tls_cert: String = String::new(), env = "ALONGSIDE_TLS_CERT";
    /// The PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    tls_key: String = String::new(), env = "ALONGSIDE_TLS_KEY";
    /// An address for a plain-HTTP listener that only redirects to HTTPS (say
    /// `0.0.0.0:80`); empty = none. Needs `tls_cert`.
    redirect_listen: String = String::new(), env = "ALONGSIDE_REDIRECT_LISTEN";
    /// An address that serves `/metrics` alone (say `127.0.0.1:9090`), off the public
    /// port, which then has no `/metrics`; empty = `/metrics` on `listen` (behind
    /// `metrics_token` when set).
    metrics_listen: String = String::new(), env = "ALONGSIDE_METRICS_LISTEN";
    /// Log filter, e.g. `info` or `alongside=debug,info`.
    log: String = "info".into(), env = "ALONGSIDE_LOG";
    /// `text` (a readable line per event) or `json` (one object per line, for a log
    /// collector). Neither ever holds a password, a token or a message's text.
    log_format: LogFormat = LogFormat::Text, env = "ALONGSIDE_LOG_FORMAT";
}

/// One setting of the table, for `config check` and docs/configuration.md.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The config file's key (the flag is `--` and this with dashes).
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// What it does (one line per doc-comment line).
    pub doc: &'static str,
}

impl SettingInfo {
    /// The `serve` flag.
    pub fn flag(&self) -> String {
        match self.name {
            "allowed_origins" => "--allowed-origin".into(),
            name => format!("--{}", name.replace('_', "-")),
        }
    }

    /// The documentation as one paragraph.
    pub fn text(&self) -> String {
        self.doc.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// A setting's value written as in the TOML file.
trait Show {
    fn show(&self) -> String;
}

impl Show for String {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl Show for Vec<String> {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

macro_rules! show_plainly {
    ($($ty:ty),*) => { $( impl Show for $ty { fn show(&self) -> String { self.to_string() } } )* };
}
show_plainly!(bool, u32, u64, usize);

impl Show for f64 {
    fn show(&self) -> String {
        // `1.0`, not `1`: TOML reads a float back only with its point.
        format!("{self:?}")
    }
}

impl Show for Registration {
    fn show(&self) -> String {
        format!("\"{}\"", self.as_str())
    }
}

impl Show for LogFormat {
    fn show(&self) -> String {
        format!("\"{}\"", self.as_str())
    }
}

/// Where a setting's value came from, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `serve` flag.
    Flag,
    /// An `ALONGSIDE_*` environment variable.
    Environment,
    /// The config file.
    File,
    /// The built-in default.
    Default,
}

impl Source {
    /// The word `config check` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// Reads a config file's settings, refusing unknown keys and bad values.
pub fn read_file(path: &std::path::Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|span| text[..span.start].matches('\n').count() + 1);
        let at = line.map(|line| format!(", line {line}")).unwrap_or_default();
        format!("config file {}{at}: {}", path.display(), e.message())
    })
}

/// docs/configuration.md: every setting from the one table, with its flag, environment
/// variable and default (`alongside config docs` prints it; a test keeps the file
/// up to date).
pub fn markdown() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Generated by `alongside config docs` from the settings table in src/config.rs; \
         a test fails when this file is out of date. -->\n\n\
         Every setting can be given three ways. A flag of `alongside serve` wins over an \
         environment variable, which wins over a key in the TOML file named by `--config` \
         (or `ALONGSIDE_CONFIG`), which wins over the built-in default. \
         `alongside config check FILE` checks a file and prints every setting's value and \
         where it came from; `alongside.example.toml` is a commented example.\n\n",
    );
    for setting in SETTINGS {
        let default = defaults.shown(setting.name).unwrap_or_default();
        out.push_str(&format!(
            "## `{}`\n\n{}\n\n- flag: `{}`\n- environment: `{}`\n- default: `{}`\n\n",
            setting.name,
            setting.text(),
            setting.flag(),
            setting.env,
            default
        ));
    }
    out
}

impl Config {
    /// `auth_timeout_s` as a duration.
    pub fn auth_timeout(&self) -> Duration {
        seconds(self.auth_timeout_s)
    }

    /// `ping_interval_s` as a duration.
    pub fn ping_interval(&self) -> Duration {
        seconds(self.ping_interval_s)
    }

    /// `header_read_timeout_s` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        seconds(self.header_read_timeout_s)
    }

    /// `shutdown_grace_s` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        seconds(self.shutdown_grace_s)
    }

    /// Reads the config file named in `args` (if any) and merges.
    pub fn load(args: ServeArgs) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let config = Config::merge(args, file);
        config.check()?;
        Ok(config)
    }

    /// This node's name: `node_id`, or the host name and the process id.
    pub fn node(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let mut name = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that.
        let host = if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0 {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).into_owned()
        } else {
            String::new()
        };
        let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
        format!("{}-{}", if host.is_empty() { "alongside" } else { &host }, std::process::id())
    }

    /// Refuses values that cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("--listen `{}` is not an address like 127.0.0.1:8080", self.listen));
        }
        for (name, value) in [("--redirect-listen", &self.redirect_listen), ("--metrics-listen", &self.metrics_listen)]
        {
            if !value.is_empty() && value.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!("{name} `{value}` is not an address like 127.0.0.1:9090"));
            }
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err("--tls-cert and --tls-key go together: give both files, or neither".into());
        }
        if !self.redirect_listen.is_empty() && self.tls_cert.is_empty() {
            return Err("--redirect-listen redirects to HTTPS, so it needs --tls-cert and --tls-key".into());
        }
        if !self.bus.is_empty() && !self.bus.starts_with("redis://") {
            return Err(format!(
                "--bus `{}` is not a redis:// URL (leave it empty for a single node)",
                crate::store::redacted(&self.bus)
            ));
        }
        if !(self.quick_exit_url.starts_with("https://") || self.quick_exit_url.starts_with("http://"))
            || self.quick_exit_url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("--quick-exit-url is a web address, such as https://www.bbc.co.uk/weather".into());
        }
        if self.cluster.is_empty()
            || self.cluster.len() > 64
            || !self.cluster.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err("--cluster is 1 to 64 letters, digits, dots, dashes or underscores".into());
        }
        if self.node_id.len() > 64 || !self.node_id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err("--node-id is at most 64 letters, digits, dots, dashes or underscores".into());
        }
        if self.max_frame_bytes < 1024 {
            return Err("--max-frame-bytes must be at least 1024".into());
        }
        if self.outbox_frames == 0 {
            return Err("--outbox-frames must be at least 1".into());
        }
        for (name, value) in [
            ("--auth-timeout-s", self.auth_timeout_s),
            ("--ping-interval-s", self.ping_interval_s),
            ("--shutdown-grace-s", self.shutdown_grace_s),
            ("--header-read-timeout-s", self.header_read_timeout_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number of seconds"));
            }
        }
        crate::net::TrustedProxies::parse(&self.trusted_proxies).map_err(|err| format!("--trusted-proxies: {err}"))?;
        if !(self.request_rate_per_s.is_finite() && self.request_rate_per_s >= 0.0) {
            return Err("--request-rate-per-s must be 0 (off) or positive".into());
        }
        Ok(())
    }
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file: FileSettings =
            toml::from_str("listen = \"0.0.0.0:9000\"\noutbox_frames = 16\nlog = \"debug\"").unwrap();
        let args = ServeArgs { outbox_frames: Some(32), ..ServeArgs::default() };
        let config = Config::merge(args, file);
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.outbox_frames, 32);
        assert_eq!(config.log, "debug");
        assert_eq!(config.database, "sqlite://alongside.db");
        assert_eq!(config.max_frame_bytes, 65536);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileSettings>("lisen = \"x\"").is_err());
        let config = Config { listen: "nowhere".into(), ..Config::default() };
        assert!(config.check().unwrap_err().contains("--listen"));
        let config = Config { auth_timeout_s: 0.0, ..Config::default() };
        assert!(config.check().is_err());
    }

    #[test]
    fn docs_configuration_md_is_generated_from_the_settings_table() {
        let generated = markdown();
        for setting in SETTINGS {
            assert!(Config::default().shown(setting.name).is_some(), "{} has no value to show", setting.name);
        }
        let file = include_str!("../docs/configuration.md");
        assert!(
            file == generated,
            "docs/configuration.md is out of date: run `cargo run -- config docs > docs/configuration.md`"
        );
    }

    #[test]
    fn the_example_config_file_parses_and_is_valid() {
        let text = include_str!("../alongside.example.toml");
        let file: FileSettings = toml::from_str(text).expect("example config parses");
        Config::merge(ServeArgs::default(), file).check().expect("example config is valid");
    }
}
