//! `pettycash-replay`: a thin binary over the library (see `lib.rs` and the [replay] issue).
//! Exit codes: 0 ok, 1 failure while reading or (`verify`) a violation, 2 usage or connection error.

use clap::Parser;
use pettycash_replay::{run, Cli};
use std::io::Write;

fn main() {
    // clap exits with status 2 on usage errors (0 for --help / --version).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pettycash-replay: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = runtime.block_on(run(cli, &mut out));
    let _ = out.flush();
    if let Err(f) = result {
        // The reader went away (`| head`): not a failure.
        let broken_pipe = f
            .error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        if broken_pipe {
            return;
        }
        eprintln!("pettycash-replay: {:#}", f.error);
        std::process::exit(f.code);
    }
}
