//! The `alongside` command line (its clap types are at the end of this file) and what
//! the binary does with it.
//!
//! `serve` runs the server until SIGTERM or ctrl-c; `user create` and `user set-role`
//! work on the database directly, so they work whether or not a server is running.
//! Every failure is one line on stderr and a non-zero exit.

use crate::auth::{check_display_name, check_password, check_password_not_common, normalise_username, Passwords};
use crate::config::{Config, LogFormat, ServeArgs};
use crate::metrics::Metrics;
use crate::protocol::{Message, Role};
use crate::server::Server;
use crate::store::sqlite::backup;
use crate::store::{self, Change, CommitListener, Store, StoreError};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    let outcome = match cli.command {
        Command::Serve(args) => match Config::load(*args) {
            Ok(config) => runtime.block_on(serve(config)),
            Err(message) => Err(message),
        },
        Command::User { action } => runtime.block_on(user(action)),
        Command::Invite { action: InviteCommand::Create { uses, expires_in, database } } => {
            runtime.block_on(create_invite(uses, expires_in.as_deref(), &database))
        }
        Command::Summit { action: SummitCommand::Import { file, organiser, prefix, timing, dry_run, database } } => {
            runtime.block_on(import_programme(&file, &organiser, &prefix, timing, dry_run, &database))
        }
        Command::Migrate { database } => runtime.block_on(migrate(&database)),
        Command::Copy { from, to } => runtime.block_on(copy(&from, &to)),
        Command::Config { action: ConfigCommand::Docs } => {
            print!("{}", crate::config::markdown());
            Ok(())
        }
        Command::Config { action: ConfigCommand::Check { file, args } } => {
            let given = matches.subcommand_matches("config").and_then(|m| m.subcommand_matches("check"));
            check_config(&file, *args, given)
        }
        Command::Backup { file, database } => runtime.block_on(async {
            let summary = backup::backup(&database, &file).await?;
            println!("backed up {} to {}: {summary}", store::redacted(&database), file.display());
            Ok(())
        }),
        Command::Restore { file, database } => runtime.block_on(async {
            let (summary, kept) = backup::restore(&file, &database).await?;
            println!("restored {} into {}: {summary}", file.display(), store::redacted(&database));
            if let Some(kept) = kept {
                println!("the database it replaced is kept as {}", kept.display());
            }
            Ok(())
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("alongside: {message}");
    ExitCode::FAILURE
}

async fn serve(config: Config) -> Result<(), String> {
    let filter: tracing_subscriber::filter::Targets =
        config.log.parse().map_err(|err| format!("--log `{}`: {err}", config.log))?;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match config.log_format {
        // One object per line, the connection's span (its id) included.
        LogFormat::Json => layer.json().with_current_span(true).with_span_list(false).boxed(),
        // Colour codes only for a person at a terminal, not in log files.
        LogFormat::Text => layer.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).boxed(),
    };
    // One global filter (not a per-layer one): a disabled callsite is then never asked
    // again, so the debug events of the hot paths cost nothing.
    tracing_subscriber::registry().with(layer).with(filter).init();
    // A file-size limit (`ulimit -f`) must turn into write errors that the store answers
    // and recovers from, not kill the server with SIGXFSZ.
    // SAFETY: sets the process-wide disposition of one signal to "ignore"; no handler runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let open_files = raise_open_file_limit();
    let server = Server::start(config.clone()).await.map_err(|err| err.to_string())?;
    // Scripts and tests read this line to find the port when listening on port 0.
    let scheme = if server.is_tls() { "https" } else { "http" };
    println!("alongside listening on {scheme}://{}", server.local_addr());
    if let Some(addr) = server.metrics_addr() {
        println!("alongside metrics on http://{addr}/metrics");
    }
    if let Some(addr) = server.redirect_addr() {
        println!("alongside redirecting to HTTPS from http://{addr}");
    }
    tracing::info!(node = %config.node(), addr = %server.local_addr(), database = %store::redacted(&config.database), open_files, "serving");
    let stop = server.shutdown_token();
    if server.is_tls() {
        let reload = server.tls_reloader();
        tokio::spawn(async move {
            let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; the certificate is read again only on a restart");
                return;
            };
            while hangups.recv().await.is_some() {
                match reload() {
                    Ok(()) => tracing::info!("SIGHUP: read the certificate and key again; new connections use them"),
                    Err(err) => {
                        tracing::error!(error = %err, "SIGHUP: the certificate did not load; the old one stays")
                    }
                }
            }
        });
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing sockets and finishing writes");
        stop.cancel();
    });
    server.wait().await;
    Ok(())
}

/// `alongside config check`: reads the file, merges as `serve` would, checks the
/// values (and that the certificate and care files load), and prints each setting.
fn check_config(file: &std::path::Path, mut args: ServeArgs, given: Option<&clap::ArgMatches>) -> Result<(), String> {
    use crate::config::{Source, SETTINGS};
    let settings = crate::config::read_file(file)?;
    args.config = Some(file.to_path_buf());
    let config = Config::merge(args, settings.clone());
    config.check().map_err(|err| format!("config file {}: {err}", file.display()))?;
    if !config.tls_cert.is_empty() {
        crate::listener::Tls::load(&config.tls_cert, &config.tls_key)?;
    }
    crate::state::Care::load(&config)?;
    let _: tracing_subscriber::filter::Targets =
        config.log.parse().map_err(|err| format!("log `{}`: {err}", config.log))?;
    println!("{} is valid. The settings `alongside serve --config {}` would run with:", file.display(), file.display());
    let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for setting in SETTINGS {
        let source = match given.and_then(|m| m.value_source(setting.name)) {
            Some(clap::parser::ValueSource::CommandLine) => Source::Flag,
            Some(clap::parser::ValueSource::EnvVariable) => Source::Environment,
            _ if settings.has(setting.name) => Source::File,
            _ => Source::Default,
        };
        let value = config.shown(setting.name).unwrap_or_default();
        println!("  {:width$} = {value}    # {}", setting.name, source.as_str());
    }
    Ok(())
}

/// Raises the limit on open files to the hard limit: every socket is one, and the
/// default soft limit (often 1,024) would stop a busy server accepting long before its
/// own caps. Best effort; returns the limit in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The CLI writes no messages, so nobody listens to commits.
struct NoListener;

impl CommitListener for NoListener {
    fn message_committed(&self, _message: &Message) {}
}

async fn open_store(url: &str) -> Result<Arc<dyn Store>, String> {
    store::open(url, Arc::new(NoListener), Arc::new(Metrics::default())).await.map_err(|err| err.to_string())
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role `{text}`: use member, moderator, organiser or admin"))
}

async fn copy(from: &str, to: &str) -> Result<(), String> {
    let copied = store::copy::copy(from, to).await.map_err(|err| err.to_string())?;
    let counts: Vec<String> = copied.iter().map(|(table, n)| format!("{n} {table}")).collect();
    println!("copied {} to {}: {}", store::redacted(from), store::redacted(to), counts.join(", "));
    Ok(())
}

async fn migrate(database: &str) -> Result<(), String> {
    let (before, after) = store::migrate(database).await.map_err(|err| err.to_string())?;
    if before == after {
        println!("the schema is up to date (version {after})");
    } else {
        println!("migrated the schema from version {before} to {after}");
    }
    Ok(())
}

async fn user(action: UserCommand) -> Result<(), String> {
    match action {
        UserCommand::Create { username, role, display_name, database } => {
            let username = normalise_username(&username).map_err(str::to_string)?;
            crate::auth::check_not_reserved(&username).map_err(str::to_string)?;
            let role = parse_role(&role)?;
            let display_name = display_name.unwrap_or_else(|| username.clone());
            check_display_name(&display_name).map_err(str::to_string)?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).map_err(|err| format!("cannot read the password: {err}"))?;
            // One trailing newline is what `echo` and a terminal add, not the password.
            let password = password.strip_suffix('\n').unwrap_or(&password);
            let password = password.strip_suffix('\r').unwrap_or(password).to_string();
            check_password(&password).map_err(str::to_string)?;
            check_password_not_common(&password).map_err(str::to_string)?;
            let store = open_store(&database).await?;
            let hash = Passwords::new(1).hash(password).await.map_err(|err| err.to_string())?;
            let outcome = store.insert_user(&username, &display_name, &hash, role, None).await;
            store.close().await;
            match outcome {
                Ok(record) => {
                    println!("created {} ({})", record.user.username, record.user.role);
                    Ok(())
                }
                Err(StoreError::Conflict) => Err(format!("the username `{username}` is taken")),
                Err(StoreError::NameInUse) => {
                    Err(format!("the display name `{display_name}` is someone's name already"))
                }
                Err(err) => Err(err.to_string()),
            }
        }
        UserCommand::SetRole { username, role, database } => {
            let role = parse_role(&role)?;
            let username = username.to_lowercase();
            let store = open_store(&database).await?;
            let outcome = match store.update_user_role(&username, role, None).await {
                // A running server polls for this and applies it to open sockets.
                Ok(record) => store.insert_change(record.id, Change::Role).await.map(|()| record),
                Err(err) => Err(err),
            };
            store.close().await;
            match outcome {
                Ok(record) => {
                    println!("{} is now {}", record.user.username, record.user.role);
                    Ok(())
                }
                Err(StoreError::NotFound) => Err(format!("there is no user `{username}`")),
                Err(err) => Err(err.to_string()),
            }
        }
        UserCommand::RevokeTokens { username, database } => {
            let username = username.to_lowercase();
            let store = open_store(&database).await?;
            let outcome = async {
                let record = store.fetch_user(&username).await?.ok_or(StoreError::NotFound)?;
                let revoked = store.delete_user_tokens(record.id).await?;
                store.insert_change(record.id, Change::Tokens).await?;
                Ok::<u64, StoreError>(revoked)
            }
            .await;
            store.close().await;
            match outcome {
                Ok(revoked) => {
                    println!(
                        "revoked {revoked} token{} of {username}; their open connections close",
                        if revoked == 1 { "" } else { "s" }
                    );
                    Ok(())
                }
                Err(StoreError::NotFound) => Err(format!("there is no user `{username}`")),
                Err(err) => Err(err.to_string()),
            }
        }
        UserCommand::Delete { username, database } => {
            let username = username.to_lowercase();
            let store = open_store(&database).await?;
            let outcome = async {
                let record = store.fetch_user(&username).await?.ok_or(StoreError::NotFound)?;
                let erased = store.erase_user(record.id).await?;
                // A running server polls for this: it closes the sockets and forgets the blocks.
                store.insert_change(record.id, Change::Erased).await?;
                Ok::<_, StoreError>(erased)
            }
            .await;
            store.close().await;
            match outcome {
                Ok(erased) => {
                    println!("erased {} (now {}); it was in {} rooms", erased.old, erased.new, erased.rooms.len());
                    Ok(())
                }
                Err(StoreError::NotFound) => Err(format!("there is no user `{username}`")),
                Err(err) => Err(err.to_string()),
            }
        }
        UserCommand::Export { username, database } => {
            use futures_util::StreamExt;
            use std::io::Write;
            let username = username.to_lowercase();
            let store = open_store(&database).await?;
            let outcome = async {
                let record = store.fetch_user(&username).await?.ok_or(StoreError::NotFound)?;
                let parts = crate::export::export(store.clone(), record).await?;
                futures_util::pin_mut!(parts);
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                while let Some(part) = parts.next().await {
                    out.write_all(&part?).map_err(|err| StoreError::from(sqlx::Error::Io(err)))?;
                }
                out.write_all(b"\n").and_then(|()| out.flush()).map_err(|err| StoreError::from(sqlx::Error::Io(err)))
            }
            .await;
            store.close().await;
            match outcome {
                Ok(()) => Ok(()),
                Err(StoreError::NotFound) => Err(format!("there is no user `{username}`")),
                Err(err) => Err(err.to_string()),
            }
        }
    }
}

/// The `alongside` command line.
#[derive(Debug, Parser)]
#[command(name = "alongside", version, about = "A chat server for peer-support and advocacy networks.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Bring the database's schema up to date and exit (`serve` does this too; run it
    /// once before starting several nodes on one database).
    Migrate {
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Copy a network from SQLite to an empty PostgreSQL database (stop the server
    /// first): every account, room, message with its seq, sanction, report and log.
    Copy {
        /// The SQLite database, `sqlite://PATH`.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, `postgres://USER@HOST/NAME`.
        #[arg(long)]
        to: String,
    },
    /// Make a consistent copy of a SQLite database, safely while the server runs (a
    /// file copy of a live database can be torn). FILE is replaced only once the new
    /// copy is whole and checked. For PostgreSQL use pg_dump.
    Backup {
        /// Where to write the backup.
        file: std::path::PathBuf,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Replace a SQLite database with a backup (refused while a server uses it; the
    /// database it replaces is kept beside it as PATH.replaced-<time>).
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Check a config file, or print the settings' documentation.
    Config {
        /// Which action.
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Manage accounts directly in the database (works with or without a running server).
    User {
        /// Which action.
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Invite codes, for a network that registers by invitation (`--registration invite`).
    Invite {
        /// Which action.
        #[command(subcommand)]
        action: InviteCommand,
    },
    /// Summit rooms from a programme (works with or without a running server).
    Summit {
        /// Which action.
        #[command(subcommand)]
        action: SummitCommand,
    },
}

/// `alongside summit ...`.
#[derive(Debug, Subcommand)]
pub enum SummitCommand {
    /// Open one summit room per session of a programme (an iCalendar file, or JSON:
    /// docs/organisers-guide.md), each with its backstage, its speakers and its phases
    /// around the session. Nothing is created if any session has a problem.
    Import {
        /// The programme: `.ics` or JSON.
        file: std::path::PathBuf,
        /// The organiser (or admin) who owns the rooms.
        #[arg(long)]
        organiser: String,
        /// Put before every room name made from a title (`wmhd26-`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// When the phases fall around each session.
        #[command(flatten)]
        timing: TimingArgs,
        /// Print what would be created, and create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
}

/// `--lobby`, `--qa` and `--closed-after`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TimingArgs {
    /// Minutes before the start that the lobby opens (0: no lobby).
    #[arg(long, value_name = "MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(0..=1440))]
    lobby: u32,
    /// Percent of each session, at its end, kept for Q&A (0: none; 100: all).
    #[arg(long, value_name = "PERCENT", default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    qa: u32,
    /// Minutes after the end that the room closes for good (the hallway until then).
    #[arg(long, value_name = "MINUTES", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=10080))]
    closed_after: u32,
}

/// `alongside summit import`.
async fn import_programme(
    file: &std::path::Path,
    organiser: &str,
    prefix: &str,
    timing: TimingArgs,
    dry_run: bool,
    database: &str,
) -> Result<(), String> {
    use crate::programme::{import, read, Timing};
    let text = std::fs::read_to_string(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    let sessions = read(&text, prefix).map_err(|err| format!("{}: {err}", file.display()))?;
    let timing =
        Timing { lobby_minutes: timing.lobby, qa_percent: timing.qa, closed_after_minutes: timing.closed_after };
    let store = open_store(database).await?;
    let outcome = import(&*store, organiser, sessions, timing, crate::protocol::now_ms(), dry_run).await;
    store.close().await;
    let planned = outcome?;
    for plan in &planned {
        let session = &plan.session;
        let zone = if session.time_zone.is_empty() { "UTC" } else { session.time_zone.as_str() };
        // `2030-10-10 09:00` in the session's own zone.
        let at = |ms: i64| {
            let text = crate::protocol::format_ts_in(ms, &session.time_zone);
            format!("{} {}", &text[..10], &text[11..16])
        };
        println!(
            "#{}  “{}”  {} to {} ({zone})",
            session.room,
            session.title,
            at(session.start),
            &at(session.end)[11..]
        );
        let phases: Vec<String> =
            plan.schedule.iter().map(|(phase, ms)| format!("{} {}", phase.as_str(), &at(*ms)[5..])).collect();
        println!("    {}", phases.join(", "));
        if !plan.speakers.is_empty() {
            let names: Vec<&str> = plan.speakers.iter().map(|user| user.user.username.as_str()).collect();
            println!("    speakers: {}", names.join(", "));
        }
    }
    let verb = if dry_run { "would open" } else { "opened" };
    println!("{verb} {} summit room(s), each with its backstage", planned.len());
    Ok(())
}

/// `alongside config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file (with the environment and any `serve` flags given after it)
    /// and print every setting's effective value and where it came from.
    Check {
        /// The TOML config file.
        file: std::path::PathBuf,
        /// `serve` flags, as you would give them.
        #[command(flatten)]
        args: Box<ServeArgs>,
    },
    /// Print docs/configuration.md: every setting, its flag, variable and default.
    Docs,
}

/// `alongside invite ...`.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Make an invite code and print it (it is shown once; the server keeps only a hash).
    Create {
        /// How many registrations it allows.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it works: a number with s, m, h or d (`7d`, `12h`); default: no end.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
}

/// A duration as `--expires-in` takes it: a whole number and a unit (s, m, h, d).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` is not a duration: use a number with s, m, h or d, like 7d")),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration: it needs a number, like 7d"))?;
    if number == 0 || number.saturating_mul(seconds) > 365 * 86_400 {
        return Err(format!("`{text}`: an invite lasts from one second to a year"));
    }
    Ok(std::time::Duration::from_secs(number * seconds))
}

async fn create_invite(uses: u32, expires_in: Option<&str>, database: &str) -> Result<(), String> {
    if !(1..=10_000).contains(&uses) {
        return Err("--uses is 1 to 10000".into());
    }
    let expires_at = expires_in
        .map(parse_duration)
        .transpose()?
        .map(|duration| crate::protocol::now_ms() + duration.as_millis() as i64);
    let store = open_store(database).await?;
    let outcome = store::create_invite(&*store, uses, expires_at, None).await;
    store.close().await;
    let invite = outcome.map_err(|err| err.to_string())?;
    match &invite.expires_at {
        Some(until) => println!("{} (for {uses} registration(s), until {until})", invite.code),
        None => println!("{} (for {uses} registration(s), no end)", invite.code),
    }
    Ok(())
}

/// `alongside user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        /// Username (3–32 of a-z 0-9 _ . -).
        username: String,
        /// Global role: member, moderator, organiser or admin.
        #[arg(long, default_value = "member")]
        role: String,
        /// Name shown in the client (default: the username).
        #[arg(long)]
        display_name: Option<String>,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Change an account's global role; a running server applies it to open
    /// connections within seconds.
    SetRole {
        /// Username.
        username: String,
        /// member, moderator, organiser or admin.
        role: String,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Log an account out everywhere: revoke every token; a running server closes its
    /// open connections within seconds.
    RevokeTokens {
        /// Username.
        username: String,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Erase an account: its messages become deleted messages (their seqs stay), its
    /// data goes, its name becomes `deleted-<n>` where records must stay; a running
    /// server closes its connections within seconds.
    Delete {
        /// Username.
        username: String,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
    /// Write everything the server holds about an account, as JSON, to standard output
    /// (what the member gets from "Download my data").
    Export {
        /// Username.
        username: String,
        /// Database URL.
        #[arg(long, env = "ALONGSIDE_DATABASE", default_value = "sqlite://alongside.db")]
        database: String,
    },
}
