//! The command line of `hragctl` (clap derive). `--json` and `--socket` are global: accepted
//! before or after the subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "hragctl", version, about = "Control the hrag daemon (hragd)")]
pub struct Cli {
    /// Machine output: JSON on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// hragd's control socket [default: as hragd's].
    #[arg(long, global = true, env = "HRAG_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Daemon and database states.
    Status,
    /// Uptime, memory, open files, per-database health.
    Health,
    /// Pause ingestion; returns once the work in flight has finished.
    Pause(Target),
    /// Resume ingestion.
    Resume(Target),
    /// Manage the registry.
    #[command(subcommand)]
    Db(DbCommand),
    /// Backend status and provisioning.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Move a database to another backend (JSON → Postgres), or follow migrations.
    Migrate(MigrateArgs),
    /// Compare a database's stores record by record.
    Verify { db: String },
    /// Write a database out as a LightRAG JSON directory.
    Export {
        db: String,
        /// Target format (json).
        #[arg(long, value_enum, default_value = "json")]
        to: ExportFormat,
        dir: PathBuf,
    },
    /// Enqueue files or folders for ingestion now.
    Ingest {
        db: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Retrieve context (and optionally an answer) from a database.
    Query(QueryArgs),
    /// Metrics in Prometheus text format.
    Metrics,
    /// Re-read the registry file (as SIGHUP does).
    Reload,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The database.
    pub db: Option<String>,
    /// Every database.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Backend {
    Json,
    Postgres,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Json,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Registered databases.
    List,
    /// One registry entry (passwords redacted).
    Show { name: String },
    /// Register a database, or adopt an existing LightRAG directory.
    #[command(alias = "register")]
    Add(DbAddArgs),
    /// Unregister a database (its data stays on disk).
    #[command(alias = "rm")]
    Remove { name: String },
    /// Point a database at another backend without moving data.
    SetBackend {
        name: String,
        #[arg(long, value_enum)]
        backend: Backend,
        #[command(flatten)]
        pg: PgArgs,
    },
}

#[derive(Debug, Args)]
pub struct DbAddArgs {
    pub name: String,
    /// LightRAG working directory.
    #[arg(long)]
    pub path: PathBuf,
    /// Folder to watch and ingest.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Workspace (JSON: subfolder; Postgres: workspace column, default the database name).
    #[arg(long)]
    pub workspace: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub backend: Backend,
    #[command(flatten)]
    pub pg: PgArgs,
}

#[derive(Debug, Args)]
pub struct PgArgs {
    /// postgresql://user@host:port/db (a password in it is moved to a 0600 file).
    #[arg(long)]
    pub connection_string: Option<String>,
    /// File holding the Postgres password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Postgres host (or socket directory) [default: $POSTGRES_HOST, else localhost].
    #[arg(long, conflicts_with = "connection_string")]
    pub postgres_host: Option<String>,
    /// [default: $POSTGRES_PORT, else 5432]
    #[arg(long, conflicts_with = "connection_string")]
    pub postgres_port: Option<u16>,
    /// [default: $POSTGRES_USER, else hybridrag]
    #[arg(long, conflicts_with = "connection_string")]
    pub postgres_user: Option<String>,
    /// [default: $POSTGRES_DATABASE, else hybridrag]
    #[arg(long, conflicts_with = "connection_string")]
    pub postgres_database: Option<String>,
    /// disable, allow, prefer, require, verify-ca or verify-full.
    #[arg(long)]
    pub postgres_ssl_mode: Option<String>,
    /// Pool size (1–100) [default: 10].
    #[arg(long)]
    pub postgres_max_connections: Option<u32>,
    /// Save without connecting first (the database stays degraded until Postgres answers).
    #[arg(long)]
    pub no_check: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Health, counts and sizes of one database or all.
    Status {
        db: Option<String>,
        #[arg(long)]
        verbose: bool,
    },
    /// Run Postgres + pgvector in Docker and register it. Exit codes: 0 ok, 1 docker
    /// unavailable, 2 port in use, 3 create failed.
    SetupDocker {
        /// Host port on 127.0.0.1 [default: 5433, or the one set up before].
        #[arg(long)]
        port: Option<u16>,
        /// Postgres password [default: $POSTGRES_PASSWORD, the one set up before, or a new
        /// random one]; kept in 0600 files, never in the registry.
        #[arg(long)]
        password: Option<String>,
        /// Docker volume for the data [default: hybridrag-pgdata].
        #[arg(long)]
        volume: Option<String>,
        /// Point this database at the server.
        #[arg(long)]
        db: Option<String>,
        /// Print the compose file and the commands, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run Postgres + pgvector from this machine's binaries (initdb, pg_ctl) and register it.
    /// Exit codes as setup-docker's.
    SetupLocal {
        /// Cluster directory [default: $XDG_DATA_HOME/hrag/postgres, /var/lib/hragctl/postgres
        /// for root].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port on 127.0.0.1 [default: 5434; an existing cluster keeps its own].
        #[arg(long)]
        port: Option<u16>,
        /// Point this database at the server.
        #[arg(long)]
        db: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub status: Option<MigrateCommand>,
    /// The database to migrate.
    pub db: Option<String>,
    #[arg(long, value_enum)]
    pub to: Option<Backend>,
    #[arg(long)]
    pub connection_string: Option<String>,
    /// Embedding model (picks LightRAG's per-model vector tables).
    #[arg(long)]
    pub embedding_model: Option<String>,
    #[arg(long)]
    pub batch_size: Option<u32>,
    #[arg(long)]
    pub resume: bool,
    #[arg(long)]
    pub no_verify: bool,
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Reattach to running or last migrations.
    Status { db: Option<String> },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    Naive,
    Local,
    Global,
    Hybrid,
    Mix,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    pub db: String,
    pub text: String,
    #[arg(long, value_enum, default_value = "mix")]
    pub mode: Mode,
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Also write an answer with the configured LLM.
    #[arg(long)]
    pub answer: bool,
}
