//! The `twinshield` command line: parses arguments and wires the library
//! crates together. Library errors become one clear line on standard error
//! and a non-zero exit status here, and only here.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// twinshield: a hardened digital-twin runtime for industrial systems.
#[derive(Parser)]
#[command(name = "twinshield", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with twin model files (.twin).
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Model(c) => cmd::model::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as the command-line contract asks.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
