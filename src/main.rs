//! `vigile`: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vigile::cli::Cli::parse();
    vigile::cli::init_logging();
    match vigile::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigile: {e}");
            ExitCode::FAILURE
        }
    }
}
