//! `vigile`: parse the command line, hand over to the library (which sets up logging
//! once the configuration is read).

use std::process::ExitCode;

use clap::Parser;

// glibc malloc took ~13% of the gateway's CPU under load (perf, bench/run): every
// proxied request allocates headers and buffers on several threads. mimalloc's
// thread-local free lists make that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vigile::memory::tune();
    let cli = vigile::cli::Cli::parse();
    if cli.command.is_admin() {
        // `vigile user list | head`: an admin command whose reader went away just ends, as
        // shell tools do, instead of panicking on the next line. (The server keeps Rust's
        // ignored SIGPIPE: a client closing a socket must never kill it.)
        // SAFETY: restoring the default disposition of one signal, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match vigile::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigile: {e}");
            ExitCode::FAILURE
        }
    }
}
