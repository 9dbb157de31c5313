//! `hragctl`: the command-line client of hragd. Turns arguments into one request, sends it over
//! the control socket and renders the answer; its exit code is the error's class (PRODUCT §9).

mod cli;
mod client;
mod output;
mod progress;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use hrag_proto::{
    BackendKind, DbAddSpec, DbTarget, MigrateSpec, PgTargetSpec, QueryMode, QuerySpec, Request,
    Response, SetBackendSpec, exit,
};

use cli::{Backend, BackendCommand, Cli, Command, DbCommand, MigrateCommand, Mode, PgArgs, Target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => fail(json, e.code, &e.message),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Reports an error: a sentence on stderr, and with `--json` an error object on stdout.
fn fail(json: bool, code: i32, message: &str) -> i32 {
    if json {
        let kind = match code {
            exit::DAEMON_UNAVAILABLE => "daemon_unavailable",
            exit::PROTOCOL => "protocol",
            exit::PERMISSION_DENIED => "permission_denied",
            exit::NOT_SUPPORTED => "not_supported",
            exit::INVALID => "invalid_request",
            _ => "error",
        };
        println!(
            "{}",
            serde_json::json!({ "error": { "kind": kind, "message": message } })
        );
    }
    eprintln!("hragctl: {message}");
    code
}

fn run(cli: Cli) -> Result<i32, client::ClientError> {
    if let Command::Backend(
        cmd @ (BackendCommand::SetupDocker { .. } | BackendCommand::SetupLocal { .. }),
    ) = cli.command
    {
        return run_setup(cmd, client::socket_path(cli.socket), cli.json);
    }
    let request = match to_request(cli.command)? {
        Planned::Request(r) => *r,
        Planned::Done(code) => return Ok(code),
    };
    let socket = client::socket_path(cli.socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| client::ClientError {
            code: exit::INTERNAL,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    let json = cli.json;
    let mut progress = progress::Progress::new(json);
    let response = runtime.block_on(client::call(&socket, &request, |p| progress.on(p)));
    progress.finish();
    let response = response?;
    if let Response::Error(e) = &response {
        if json && let Ok(text) = output::json(&response) {
            println!("{text}");
        }
        eprintln!("hragctl: {}", e.message);
        return Ok(e.kind.exit_code());
    }
    if json {
        match output::json(&response) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                return Ok(fail(
                    true,
                    exit::INTERNAL,
                    &format!("cannot render JSON: {e}"),
                ));
            }
        }
    } else {
        output::human(&response);
    }
    Ok(success_code(&response))
}

/// A successful answer can still report a broken backend: `backend status` exits 2 then (a
/// store in error, or a Postgres server not connected).
fn success_code(response: &Response) -> i32 {
    match response {
        Response::BackendStatus(reports)
            if reports.iter().any(|r| {
                !r.metrics.is_connected
                    && (r.status == hrag_proto::BackendHealth::Error
                        || r.backend_type == "postgres")
            }) =>
        {
            exit::UNREACHABLE
        }
        _ => exit::OK,
    }
}

enum Planned {
    Request(Box<Request>),
    /// Handled locally, with this exit code.
    Done(i32),
}

fn usage(message: String) -> client::ClientError {
    client::ClientError {
        code: exit::INVALID,
        message,
    }
}

/// Resolves a path against this process's working directory: the daemon has its own.
fn absolute(p: &Path) -> Result<String, client::ClientError> {
    std::path::absolute(p)
        .map(|a| a.display().to_string())
        .map_err(|e| usage(format!("{}: {e}", p.display())))
}

fn abs_opt(p: Option<PathBuf>) -> Result<Option<String>, client::ClientError> {
    p.as_deref().map(absolute).transpose()
}

fn pg_target(pg: PgArgs) -> Result<PgTargetSpec, client::ClientError> {
    Ok(PgTargetSpec {
        connection_string: pg.connection_string,
        password_file: abs_opt(pg.password_file)?,
        host: pg.postgres_host,
        port: pg.postgres_port,
        user: pg.postgres_user,
        database: pg.postgres_database,
        ssl_mode: pg.postgres_ssl_mode,
        max_connections: pg.postgres_max_connections,
        no_check: pg.no_check,
    })
}

fn backend(b: Backend) -> BackendKind {
    match b {
        Backend::Json => BackendKind::Json,
        Backend::Postgres => BackendKind::Postgres,
    }
}

fn target(t: Target) -> DbTarget {
    match (t.all, t.db) {
        (false, Some(db)) => DbTarget::One(db),
        _ => DbTarget::All,
    }
}

fn to_request(cmd: Command) -> Result<Planned, client::ClientError> {
    fn req(r: Request) -> Planned {
        Planned::Request(Box::new(r))
    }
    Ok(match cmd {
        Command::Status => req(Request::Status),
        Command::Health => req(Request::Health),
        Command::Pause(t) => req(Request::Pause { target: target(t) }),
        Command::Resume(t) => req(Request::Resume { target: target(t) }),
        Command::Db(DbCommand::List) => req(Request::DbList),
        Command::Db(DbCommand::Show { name }) => req(Request::DbShow { name }),
        Command::Db(DbCommand::Add(a)) => req(Request::DbAdd(DbAddSpec {
            name: a.name,
            path: absolute(&a.path)?,
            source_folder: abs_opt(a.source)?,
            workspace: a.workspace,
            backend: backend(a.backend),
            pg: pg_target(a.pg)?,
        })),
        Command::Db(DbCommand::Remove { name }) => req(Request::DbRemove { name }),
        Command::Db(DbCommand::SetBackend {
            name,
            backend: b,
            pg,
        }) => req(Request::DbSetBackend(SetBackendSpec {
            name,
            backend: backend(b),
            pg: pg_target(pg)?,
        })),
        Command::Backend(BackendCommand::Status { db, verbose }) => {
            req(Request::BackendStatus { db, verbose })
        }
        Command::Backend(
            BackendCommand::SetupDocker { .. } | BackendCommand::SetupLocal { .. },
        ) => {
            return Err(usage("setup commands run locally".into()));
        }
        Command::Migrate(m) => match (m.status, m.db) {
            (Some(MigrateCommand::Status { db }), _) => req(Request::MigrateStatus { db }),
            (None, Some(db)) => req(Request::Migrate(MigrateSpec {
                db,
                to: backend(m.to.ok_or_else(|| usage("migrate needs --to postgres".into()))?),
                connection_string: m.connection_string,
                embedding_model: m.embedding_model,
                batch_size: m.batch_size,
                resume: m.resume,
                verify: !m.no_verify,
                dry_run: m.dry_run,
                force: m.force,
            })),
            (None, None) => {
                return Err(usage(
                    "migrate needs a database name (or `migrate status`)".into(),
                ));
            }
        },
        Command::Verify { db } => req(Request::Verify { db }),
        Command::Export { db, to: _, dir } => req(Request::Export {
            db,
            dir: absolute(&dir)?,
        }),
        Command::Ingest { db, paths } => req(Request::Ingest {
            db,
            paths: paths
                .iter()
                .map(|p| absolute(p))
                .collect::<Result<_, _>>()?,
        }),
        Command::Query(q) => req(Request::Query(QuerySpec {
            db: q.db,
            text: q.text,
            mode: match q.mode {
                Mode::Naive => QueryMode::Naive,
                Mode::Local => QueryMode::Local,
                Mode::Global => QueryMode::Global,
                Mode::Hybrid => QueryMode::Hybrid,
                Mode::Mix => QueryMode::Mix,
            },
            top_k: q.top_k,
            answer: q.answer,
        })),
        Command::Metrics => req(Request::Metrics),
        Command::Reload => req(Request::Reload),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hragctl",
                &mut std::io::stdout(),
            );
            Planned::Done(exit::OK)
        }
    })
}

/// `backend setup-docker` / `setup-local`: provisioning runs here, in the client; only the
/// registration goes to hragd.
fn run_setup(cmd: BackendCommand, socket: PathBuf, json: bool) -> Result<i32, client::ClientError> {
    let runner = setup::runner::SystemRunner;
    let report = match cmd {
        BackendCommand::SetupDocker {
            port,
            password,
            volume,
            db,
            dry_run,
        } => {
            let opts = setup::docker::Options {
                port,
                password: password.or_else(|| {
                    std::env::var("POSTGRES_PASSWORD")
                        .ok()
                        .filter(|p| !p.is_empty())
                }),
                volume,
                db,
                socket,
                dir: setup::docker::Options::default_dir(),
                timeout: std::time::Duration::from_secs(120),
            };
            if dry_run {
                let (compose, commands) = setup::docker::plan(&opts);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "dry_run": true, "compose_file": compose, "commands": commands })
                    );
                } else {
                    println!("# {}\n{compose}", setup::docker::COMPOSE_NAME);
                    println!("# commands");
                    for c in commands {
                        println!("{c}");
                    }
                }
                return Ok(exit::OK);
            }
            setup::docker::setup(&runner, &opts)?
        }
        BackendCommand::SetupLocal { dir, port, db } => {
            let opts = setup::local::Options {
                dir: dir.unwrap_or_else(|| setup::data_home().join("postgres")),
                port,
                db,
                socket,
            };
            setup::local::setup(&runner, &opts)?
        }
        BackendCommand::Status { .. } => return Err(usage("not a setup command".into())),
    };
    report.print(json);
    Ok(exit::OK)
}
