//! The `skein` command: run the platform, migrate its database, administer accounts.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use skein::ServiceSet;
use skein::config::Config;
use skein_core::auth::Role;

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!(
    "choose one allocator: build mimalloc with `--no-default-features --features mimalloc`"
);

/// jemalloc (the default): glibc's allocator keeps what a burst of streams took (190 MiB after
/// 2,000 open streams and 30 s idle), jemalloc with background purging gives it back (issue
/// #22; measured in docs/benchmarks.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options: a background thread purges unused pages, dirty pages are
/// returned after one second and none are kept "muzzy", so an idle server shrinks back without
/// waiting for the next allocation. `MALLOC_CONF` in the environment still overrides. jemalloc is
/// built unprefixed (it is also C's `malloc`, for SQLite), so the symbol is the plain name.
// SAFETY: jemalloc reads this symbol once, at its initialisation, as a NUL-terminated C string
// (`const char *`): the value is a thin pointer to a static, NUL-terminated byte string that
// lives for the whole program and is never written. No other symbol has this name.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code, non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// mimalloc instead (`--no-default-features --features mimalloc`): measured, it holds more than
/// glibc after a burst (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Skein: a self-hosted AI platform in one binary.
///
/// With no configuration, `skein serve` keeps everything in ./data (SQLite) and listens on
/// 0.0.0.0:3000. Configuration comes from defaults, then skein.toml, then SKEIN_* environment
/// variables (see skein.example.toml).
#[derive(Parser)]
#[command(name = "skein", version, about, long_about)]
struct Cli {
    /// Configuration file (default: ./skein.toml when it exists).
    #[arg(long, global = true, env = "SKEIN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory for the SQLite database and generated secrets [env: SKEIN_DATA_DIR].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (all services unless --services says otherwise).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (safe to run again).
    Migrate,
    /// Manage accounts from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Billing maintenance.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Relay channels as code: export them to a TOML file, apply a file back.
    #[command(subcommand)]
    Channels(ChannelsCommand),
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// Write channels, prices, model routes and routing strategies as TOML (or YAML). Upstream
    /// keys are never written: each channel names the environment variables that hold them.
    Export {
        /// Write to this file instead of standard output (a `.yaml`/`.yml` name writes YAML).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write YAML instead of TOML.
        #[arg(long)]
        yaml: bool,
    },
    /// Apply a TOML (or `.yaml`/`.yml`) file: channels matched by name are created or updated,
    /// prices, routes and strategies set. Prints the plan; applying the same file again changes
    /// nothing. Keys are read from the environment variables the file names. To keep a file
    /// applied as it changes, set `relay.channels_file` instead.
    Apply {
        /// The file (as `skein channels export` writes it).
        file: PathBuf,
        /// Print the plan and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove channels, prices and routes the file leaves out (default: kept).
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Check every balance against the ledger and the open reservations; exits 1 on any drift.
    Verify,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [env: SKEIN_LISTEN] [default: 0.0.0.0:3000].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Services to run, comma-separated, or `all`. Available: gateway, file, user, billing, relay, chat, knowledge, plugin, agent.
    #[arg(
        long,
        env = "SKEIN_SERVICES",
        default_value = "all",
        value_name = "LIST"
    )]
    services: String,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account (give --username, --email or both).
    CreateUser {
        /// Username (3–32 letters, digits, _ . -).
        #[arg(long)]
        username: Option<String>,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Role of the new account.
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Change the role of an account (user, admin or root).
    SetRole {
        /// Username or email of the account.
        login: String,
        /// The new role.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Set a new password for an account and sign it out everywhere.
    ResetPassword {
        /// Username or email of the account.
        login: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Args)]
struct PasswordArgs {
    /// Read the password from standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it, with secrets masked.
    Check,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse::<Role>()
        .map_err(|()| "expected user, admin or root".to_string())
}

fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    skein::memory::jemalloc_is_global_allocator();
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    skein::telemetry::init(&config.log, &config.telemetry);
    // Wake-ups from outside the runtime (SQLite's worker thread answering the billing writer
    // and the request log) land in the global queue, which a busy worker otherwise reads only
    // about every 200 µs of polls; each settle batch waits for several of them, and answers
    // wait for settles past `relay.max_settles_behind`. Reading it every 4 polls: with one
    // worker 6,300–6,500 → 7,800–9,600 req/s saturated (issue #20, docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli, config));
    // The last requests' spans, before the process takes them with it.
    skein::telemetry::flush(std::time::Duration::from_secs(3));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Command::Serve(args) = &cli.command
        && let Some(listen) = &args.listen
    {
        config.server.listen = listen.clone();
        config.validate()?;
    }
    Ok(config)
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(config, &args).await,
        Command::Migrate => {
            let db = skein::open_database(&config).await?;
            println!(
                "database is up to date ({})",
                skein_core::secret::mask_url(&config.database_url())
            );
            let moved = skein::move_chat_images(&config, &db, |so_far| {
                println!(
                    "moving chat images into files: {} messages, {} images moved, {} left inline",
                    so_far.messages, so_far.images, so_far.skipped
                );
            })
            .await?;
            if moved.messages > 0 || moved.skipped > 0 {
                println!(
                    "chat images: {} moved from {} messages into files; {} messages kept theirs inline (see the log)",
                    moved.images, moved.messages, moved.skipped
                );
            }
            db.close().await;
            Ok(())
        }
        Command::Admin(command) => admin(config, command).await,
        Command::Billing(BillingCommand::Verify) => {
            let skein = skein::build(config, &ServiceSet::all()).await?;
            let billing = skein
                .billing
                .clone()
                .context("this build has no Billing service")?;
            let drift = billing.verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            skein.db.close().await;
            if drift.is_empty() {
                println!(
                    "ledger verified: every balance equals the sum of its entries, numbered 1..n in the order it moved"
                );
                Ok(())
            } else {
                for d in &drift {
                    println!("DRIFT user {}: {}", d.user_id, d.problem);
                }
                anyhow::bail!("{} problem(s) found", drift.len())
            }
        }
        Command::Channels(command) => channels(config, command).await,
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.to_masked_toml());
            if config
                .database
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("postgres"))
                && config.auth.jwt_secret.is_none()
            {
                eprintln!(
                    "warning: with PostgreSQL you likely run several instances; set auth.jwt_secret \
                     (SKEIN_JWT_SECRET) so they all accept each other's tokens"
                );
            }
            eprintln!("configuration is valid");
            Ok(())
        }
    }
}

async fn serve(config: Config, args: &ServeArgs) -> anyhow::Result<()> {
    let services = ServiceSet::parse(&args.services).map_err(anyhow::Error::msg)?;
    let listen = config.server.listen.clone();
    let skein = skein::build(config, &services).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let internal = match (&skein.config.server.internal_listen, &skein.internal) {
        (Some(address), Some(_)) => {
            let internal = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (server.internal_listen)"))?;
            tracing::info!(address = %internal.local_addr()?, "internal routes are listening");
            Some(internal)
        }
        _ => None,
    };
    tracing::info!(
        address = %listener.local_addr()?,
        services = ?services.names(),
        database = ?skein.db.backend(),
        "Skein is listening"
    );
    if let Some(token) = &skein.setup_token {
        // The one secret ever logged, on purpose: it exists only until the first account is
        // made, and whoever can read this log owns the machine anyway. At warn level, so a
        // quieter log (RUST_LOG=warn) still shows what the operator must act on.
        tracing::warn!("setup token: {token}");
    } else if skein.config.server.setup_token.is_some()
        && let Some(users) = &skein.users
        && users.needs_setup().await.unwrap_or(false)
    {
        tracing::warn!("no account yet: register the first one with the configured setup token");
    }
    skein::serve(listener, internal, skein, skein::shutdown_signal()).await
}

async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let skein = skein::build(config, &ServiceSet::all()).await?;
    let users = skein
        .users
        .clone()
        .context("this build has no User service")?;
    let outcome = match command {
        AdminCommand::CreateUser {
            username,
            email,
            role,
            password,
        } => {
            let (password, generated) = password_from(&password)?;
            let user = users
                .create_user(username.as_deref(), email.as_deref(), &password, role)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En)))?;
            println!(
                "created {} ({}) with role {}",
                user.username.or(user.email).unwrap_or_default(),
                user.id,
                user.role
            );
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        AdminCommand::SetRole { login, role } => {
            let user = users
                .set_role(&login, role)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En)))?;
            println!("{} is now {}", login, user.role);
            Ok(())
        }
        AdminCommand::ResetPassword { login, password } => {
            let (password, generated) = password_from(&password)?;
            let revoked = users
                .reset_password(&login, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En)))?;
            println!("password of {login} replaced; {revoked} session(s) signed out");
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
    };
    skein.db.close().await;
    outcome
}

async fn channels(config: Config, command: ChannelsCommand) -> anyhow::Result<()> {
    let skein = skein::build(config, &ServiceSet::all()).await?;
    let relay = skein
        .relay
        .clone()
        .context("this build has no Relay service")?;
    let message =
        |e: skein_core::ApiError| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En));
    let outcome = match command {
        ChannelsCommand::Export { output, yaml } => {
            let declared = skein_relay::declared::export(&relay)
                .await
                .map_err(message)?;
            let yaml = yaml
                || output
                    .as_deref()
                    .is_some_and(skein_relay::declared::is_yaml);
            let text = if yaml {
                skein_relay::declared::to_yaml(&declared)
            } else {
                skein_relay::declared::to_toml(&declared)
            }
            .map_err(message)?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        ChannelsCommand::Apply {
            file,
            dry_run,
            prune,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let declared = skein_relay::declared::from_file_text(&file, &text).map_err(message)?;
            let env = |name: &str| std::env::var(name).ok();
            let plan = skein_relay::declared::apply(&relay, &declared, &env, dry_run, prune)
                .await
                .map_err(message)?;
            let lines = plan.lines();
            for line in &lines {
                println!("{line}");
            }
            let changed = plan.changes.iter().filter(|c| c.action != "keep").count();
            if dry_run {
                println!("dry run: {changed} change(s) planned, nothing written");
            } else {
                println!("{changed} change(s) applied");
            }
            Ok(())
        }
    };
    skein.db.close().await;
    outcome
}

/// The password from stdin, or a generated one (printed once by the caller).
fn password_from(args: &PasswordArgs) -> anyhow::Result<(String, bool)> {
    if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        let password = text.trim_end_matches(['\r', '\n']).to_string();
        return Ok((password, false));
    }
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let password = (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    Ok((password, true))
}
