//! The `wardrobe` command: parse the flags, run the subcommand (`cli/`), print any error as one
//! line and set the exit code (1 for an error, 130 when Ctrl-C stopped the run).

mod cli;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};
use std::process::ExitCode;

/// Dies quietly on a closed pipe (`wardrobe … | head`), as Unix tools do, instead of panicking
/// in `println!`.
fn restore_default_sigpipe() {
    // SAFETY: setting a signal disposition to its default before any thread starts is sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(threads) = cli.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global()
    {
        eprintln!("error: cannot start {threads} threads: {e}");
        return ExitCode::FAILURE;
    }
    wardrobe::nn::vector::set_kernels(cli.kernels);
    let result = match cli.command {
        Command::Convert(a) => cli::convert::run(a),
        Command::Import(a) => cli::import::run(a),
        Command::Train(a) => {
            let train = matches.subcommand_matches("train");
            cli::train::run(a, &|id| train.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine))
        }
        Command::Evaluate(a) => cli::evaluate::run(a),
        Command::Predict(a) => cli::predict::run(a),
        Command::Label(a) => cli::label::run(a),
        Command::Photo(a) => cli::photo::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Tune(a) => cli::tune::run(a),
        Command::Audit(a) => cli::audit::run(a),
        Command::Quantize(a) => cli::quantize::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Ctrl-C, after saving what there was to save: the shell's convention, 128 + SIGINT.
        Err(wardrobe::Error::Interrupted) => {
            eprintln!("error: interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
