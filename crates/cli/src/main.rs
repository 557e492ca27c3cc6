//! The `twinshield` command line: parses arguments and wires the library crates together. Library
//! errors become one clear line on standard error and a non-zero exit status here, and only here.
#![forbid(unsafe_code)]
// The binary is the one place that prints: libraries log through `tracing`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod cmd;
mod observer;
mod shield;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use twinshield_shield_macros::diversify;

/// Said under the command list of `--help`: which commands need a hardened binary.
const COMMAND_SIDES: &str = "\
Vendor-side commands (model, keys, seal, inspect, eval, plant, harden, backend) open no \
device key and run from any build. Device-side commands (fingerprint, run, demo, token, \
history) open device keys or bundles and need a hardened binary (`twinshield harden`), or \
--unprotected for development.";

/// twinshield: a hardened digital-twin runtime for industrial systems.
#[derive(Parser)]
#[command(name = "twinshield", version, about, long_about = None, after_help = COMMAND_SIDES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run a binary that was never hardened, without integrity guards (development only).
    #[arg(long, global = true)]
    unprotected: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Work with twin model files (.twin).
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Run a reference plant that serves its registers over Modbus TCP.
    #[command(subcommand)]
    Plant(cmd::plant::PlantCommand),
    /// Evaluate detection: plant and twin in one process over many seeds.
    Eval(cmd::eval::EvalArgs),
    /// Plant, twin and dashboard on this machine, with an attack: no set-up.
    Demo(cmd::demo::DemoArgs),
    /// Create this device's identity on first use and write its device.fp.
    Fingerprint(cmd::fingerprint::FingerprintArgs),
    /// Publisher keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Seal a model for devices into a signed bundle.
    Seal(cmd::seal::SealArgs),
    /// Show a bundle's public header (never the model).
    Inspect(cmd::inspect::InspectArgs),
    /// Open a bundle on this device and run the twin against a plant.
    Run(cmd::run::RunArgs),
    /// The twin's encrypted history on this device.
    #[command(subcommand)]
    History(cmd::history::HistoryCommand),
    /// Seal a built twinshield binary's integrity (post-link).
    Harden(cmd::harden::HardenArgs),
    /// The reference backend: verifies and stores what twins publish.
    Backend(cmd::backend::BackendArgs),
    /// The API's bearer tokens on this device.
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
}

#[diversify]
impl Command {
    /// Whether the command opens device keys or bundles (device-side) and so needs a hardened
    /// binary; vendor-side commands never do.
    fn opens_device_keys(&self) -> bool {
        match self {
            Command::Fingerprint(_)
            | Command::Run(_)
            | Command::Demo(_)
            | Command::Token(_)
            | Command::History(_) => true,
            Command::Model(_)
            | Command::Plant(_)
            | Command::Eval(_)
            | Command::Keys(_)
            | Command::Seal(_)
            | Command::Inspect(_)
            | Command::Harden(_)
            | Command::Backend(_) => false,
        }
    }
}

/// `twinshield --version --verbose`: the version and the seeds this build was diversified with
/// (reproduce it with `TWINSHIELD_SEED`).
#[diversify]
fn verbose_version() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants = |a: &str| args.iter().any(|x| x == a);
    if args.len() == 2 && (wants("--version") || wants("-V")) && wants("--verbose") {
        println!("twinshield {}", env!("CARGO_PKG_VERSION"));
        println!(
            "build seed (obfuscation): {}",
            twinshield_shield::build_seed!()
        );
        println!(
            "white-box seed: {:#x}, secret: {}",
            twinshield_whitebox::embedded::BUILD_SEED,
            if twinshield_whitebox::embedded::running_with_development_secret() {
                "development (public)"
            } else {
                "set at build time"
            }
        );
        return true;
    }
    false
}

#[diversify]
fn main() -> ExitCode {
    if verbose_version() {
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // Every command but `harden` (which makes a binary shieldable) runs under the shield of a
    // hardened binary; a build never hardened runs the vendor-side commands without one, since they
    // open no device key. `run` holds the responses to hook, timing and environment findings until
    // its bundle's policy is known.
    if !matches!(cli.command, Command::Harden(_)) {
        let options = twinshield_shield::Options {
            unprotected: cli.unprotected,
            defer_to_bundle_policy: matches!(cli.command, Command::Run(_)),
            guard_table: None,
            hold_tracer_slot: true,
        };
        match shield::start(&options) {
            Ok(()) => {}
            Err(twinshield_shield::StartError::NeverHardened)
                if !cli.command.opens_device_keys() => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let result = match cli.command {
        Command::Model(c) => cmd::model::run(c),
        Command::Plant(c) => cmd::plant::run(c),
        Command::Eval(a) => cmd::eval::run(&a),
        Command::Demo(a) => cmd::demo::run(&a),
        Command::Fingerprint(a) => cmd::fingerprint::fingerprint(&a),
        Command::Keys(c) => cmd::keys::keys(&c),
        Command::Seal(a) => cmd::seal::seal(&a),
        Command::Inspect(a) => cmd::inspect::inspect(&a),
        Command::Run(a) => cmd::run::run(&a),
        Command::History(c) => cmd::history::history(&c),
        Command::Harden(a) => cmd::harden::run(&a),
        Command::Backend(a) => cmd::backend::run(&a),
        Command::Token(c) => cmd::token::run(&c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", twinshield_runtime::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to standard output as clap writes them; a usage error becomes one line
/// (clap's own first line) and exit status 2.
#[diversify]
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid arguments");
    eprintln!("{first} (see --help)");
    ExitCode::from(2)
}
