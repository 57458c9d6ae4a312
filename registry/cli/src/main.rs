//! The `registry` command-line program: thin argument handling over the `registry` crate.
//! Results go to stdout, logs and progress to stderr; errors print as `error: …` with a `hint: …`
//! where one helps. Exit codes: 0 success, 1 a negative answer (`rights`: no; `verify`: the
//! weights differ), 2 an error.

mod cmd;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "registry",
    version,
    about = "AI models as on-chain assets with verifiable provenance and licenses"
)]
struct Cli {
    #[command(flatten)]
    global: settings::GlobalArgs,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGISTRY_LOG")
                .unwrap_or_else(|_| "warn,registry=info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let result = settings::Settings::resolve(cli.global)
        .and_then(|settings| runtime.block_on(cli.command.run(&settings)));
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = cmd::hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}
