//! The `logitlens` binary: a thin shell over the library's command line.

fn main() {
    // SIGINT/SIGTERM remove the temporaries being written and exit with 130/143.
    if let Err(e) = logitlens::atomic::clean_up_on_signals() {
        eprintln!("logitlens: warning: {e:#}; an interrupt may leave a .logitlens-*.tmp file");
    }
    std::process::exit(logitlens::cli::main());
}
